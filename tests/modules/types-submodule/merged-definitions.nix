# Definitions of one submodule from several modules merge option by option.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; options.x = lib.mkOption { default = 0; }; }; }; }
    { s.l = [ 1 ]; } { s = { l = [ 2 ]; x = 5; }; }
  ];
}).config
