# Two declarations with the same bounds combine; different bounds do not.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _file = "a.nix"; options.n = lib.mkOption { type = lib.types.ints.between 0 5; }; }
    { _file = "b.nix"; options.n = lib.mkOption { type = lib.types.ints.between 0 5; default = 3; }; }
    { _file = "c.nix"; options.n = lib.mkOption { type = lib.types.ints.between 0 6; }; }
  ];
}).config
