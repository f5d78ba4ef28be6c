# attrsOf drops keys whose definitions all vanish under mkIf false.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.m = lib.mkOption { type = lib.types.attrsOf lib.types.int; }; }
    { m = { a = 1; b = lib.mkIf false 2; c = lib.mkMerge [ ]; }; }
  ];
}).config
