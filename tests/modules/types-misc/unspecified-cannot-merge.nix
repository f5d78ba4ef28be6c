# unspecified: different numbers cannot be merged.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.i = lib.mkOption { }; } { _file = "a.nix"; i = 1; } { _file = "b.nix"; i = 2; } ];
}).config
