# oneOf accepts any of its types.
let lib = import ../../../lib; in
let t = lib.types.oneOf [ lib.types.int lib.types.bool lib.types.str ]; in
{ checks = map t.check [ 1 true "s" 1.5 ]; inherit (t) description; }
