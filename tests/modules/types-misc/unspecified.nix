# unspecified merges by kind: lists concatenate, sets merge, booleans or, strings join.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options = lib.genAttrs [ "l" "s" "b" "t" "i" ] (_: lib.mkOption { type = lib.types.unspecified; }); }
    { l = [ 1 ]; s.a = 1; b = false; t = "a"; i = 3; }
    { l = [ 2 ]; s.b = 2; b = true; t = "b"; i = 3; }
  ];
}).config
