# either: all definitions of the first type merge by it, else by the second.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.a = lib.mkOption { type = lib.types.either lib.types.int (lib.types.listOf lib.types.str); }; options.b = lib.mkOption { type = lib.types.either lib.types.int (lib.types.listOf lib.types.str); }; }
    { a = 1; b = [ "x" ]; } { a = 1; b = [ "y" ]; }
  ];
}).config
