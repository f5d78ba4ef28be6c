# Types that cannot be combined make an error naming both declarations.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _file = "int.nix"; options.x = lib.mkOption { type = lib.types.int; }; }
    { _file = "str.nix"; options.x = lib.mkOption { type = lib.types.str; }; }
  ];
}).config
