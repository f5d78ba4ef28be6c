# A condition on one list element drops just that element.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { l = [ 1 (lib.mkIf false 2) (lib.mkIf true 3) ]; }
  ];
}).config
