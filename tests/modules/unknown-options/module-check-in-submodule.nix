# `_module.check = false` inside a submodule only relaxes that submodule.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { config._module.check = false; options.a = lib.mkOption { default = 1; }; }; default = { }; }; }
    { s.whatever = 2; }
  ];
}).config
