# An mkOption placed under `config` is reported as an undeclared option with a hint.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { _file = "m.nix"; options.a = lib.mkOption { default = 1; }; config.b = lib.mkOption { type = lib.types.int; }; } ];
}).config
