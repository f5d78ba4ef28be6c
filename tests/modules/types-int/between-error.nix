# ints.between: an out-of-range definition is a type error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.level = lib.mkOption { type = lib.types.ints.between 1 9; }; } { _file = "l.nix"; level = 12; } ];
}).config
