# List definitions are concatenated in module order: breadth-first through imports.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { imports = [ { l = [ 3 ]; } ]; l = [ 1 ]; }
    { l = [ 2 ]; }
  ];
}).config
