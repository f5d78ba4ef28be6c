# A value under `options` that is neither mkOption nor a set of options is an error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { _file = "bad.nix"; options.x.y = 3; } ];
}).config
