# enum accepts only its values.
let lib = import ../../../lib; in
let t = lib.types.enum [ "a" 1 true ]; in
{ checks = map t.check [ "a" 1 true "b" false ]; inherit (t) description; single = (lib.types.enum [ "x" ]).description; empty = (lib.types.enum [ ]).description; }
