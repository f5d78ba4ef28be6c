# ints.between refuses a lower bound above the upper one.
let t = (import ../../../lib).types.ints.between 5 1; in t.check 3
