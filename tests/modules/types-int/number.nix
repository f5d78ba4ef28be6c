# number accepts integers and floats.
let t = (import ../../../lib).types.number; in
{ checks = map t.check [ 1 1.5 "1" ]; inherit (t) description; }
