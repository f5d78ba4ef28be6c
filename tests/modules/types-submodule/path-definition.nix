# A submodule definition may be a path to a module.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.a = lib.mkOption { type = lib.types.int; }; }; }; }
    { s = ./path-definition.d/s.nix; }
  ];
}).config
