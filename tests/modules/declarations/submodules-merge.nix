# Two submodule declarations of one option make one submodule with both option sets.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.a = lib.mkOption { default = 1; }; }; default = { }; }; }
    { options.s = lib.mkOption { type = lib.types.submodule { options.b = lib.mkOption { default = 2; }; }; }; }
  ];
}).config
