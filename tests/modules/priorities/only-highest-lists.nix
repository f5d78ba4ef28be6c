# Only the definitions at the highest priority are merged.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; default = [ 0 ]; }; }
    { l = lib.mkDefault [ 1 ]; } { l = [ 2 ]; } { l = [ 3 ]; } { l = lib.mkDefault [ 4 ]; }
  ];
}).config
