# ints.between checks both bounds, inclusive.
let t = (import ../../../lib).types.ints.between 1 10; in
{ checks = map t.check [ 0 1 10 11 ]; inherit (t) description; }
