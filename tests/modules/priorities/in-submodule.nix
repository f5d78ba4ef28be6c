# Priorities work inside submodules, over their defaults.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.x = lib.mkOption { type = lib.types.int; default = 1; }; }; }; }
    { s.x = 5; } { s.x = lib.mkForce 6; }
  ];
}).config
