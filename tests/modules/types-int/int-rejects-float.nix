# int rejects floats and strings.
let t = (import ../../../lib).types.int; in
[ (t.check 1.0) (t.check "1") (t.check 1) ]
