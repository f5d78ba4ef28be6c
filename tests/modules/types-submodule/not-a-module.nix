# A submodule definition that is not a module is a type error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { }; }; }
    { _file = "s.nix"; s = 5; }
  ];
}).config
