# `_file` names the module in error messages instead of `<unknown-file>`.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { _file = "virtual.nix"; config = lib.mkMerge [ { x = 1; } ]; }
    { _file = "other.nix"; config = lib.mkMerge [ { x = 2; } ]; }
  ];
}).config
