# A submodule definition may be a module function.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.a = lib.mkOption { type = lib.types.int; }; options.b = lib.mkOption { type = lib.types.int; }; }; }; }
    { s = { config, ... }: { a = 2; b = config.a + 1; }; }
  ];
}).config
