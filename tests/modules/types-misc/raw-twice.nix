# raw: a second definition is an error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.r = lib.mkOption { type = lib.types.raw; }; } { _file = "a.nix"; r = 1; } { _file = "b.nix"; r = 1; } ];
}).config
