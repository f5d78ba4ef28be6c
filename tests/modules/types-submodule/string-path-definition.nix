# A submodule definition may be an absolute path given as a string.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule { options.a = lib.mkOption { type = lib.types.int; }; }; }; }
    { s = toString ./string-path-definition.d/s.nix; }
  ];
}).config
