# A submodule's options take their defaults when the definition is empty.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.a = lib.mkOption { default = 1; }; options.b = lib.mkOption { default = "b"; }; }; default = { }; }; }
  ];
}).config
