# mkMerge combines several definitions in one module.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; options.s = lib.mkOption { type = lib.types.str; default = "s"; }; }
    { config = lib.mkMerge [ { l = [ 1 ]; } { l = [ 2 ]; s = "t"; } (lib.mkIf false { l = [ 3 ]; }) ]; }
  ];
}).config
