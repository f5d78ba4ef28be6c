# int: different definitions conflict.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.i = lib.mkOption { type = lib.types.int; }; } { _file = "a.nix"; i = 1; } { _file = "b.nix"; i = 2; } ];
}).config
