# mkBefore inside mkIf keeps its order.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { l = [ 2 ]; } { l = lib.mkIf true (lib.mkBefore [ 1 ]); }
  ];
}).config
