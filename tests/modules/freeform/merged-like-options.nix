# Freeform definitions from several modules merge by the element type, with priorities.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.attrsOf (lib.types.listOf lib.types.int); }
    { a = [ 1 ]; b = lib.mkDefault [ 9 ]; } { a = [ 2 ]; b = [ 3 ]; c = lib.mkIf false [ 4 ]; }
  ];
}).config
