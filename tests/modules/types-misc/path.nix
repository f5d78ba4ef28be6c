# path accepts absolute paths and strings starting with "/".
let t = (import ../../../lib).types.path; in
map t.check [ /etc "/etc" "etc" 1 ]
