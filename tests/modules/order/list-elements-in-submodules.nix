# Order is per option: inside listOf submodule the definitions of each entry sort on their own.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }; }; }
    { s.l = lib.mkAfter [ 3 ]; } { s.l = [ 2 ]; } { s = { l = lib.mkBefore [ 1 ]; }; }
  ];
}).config
