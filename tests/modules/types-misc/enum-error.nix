# enum: a value outside the enum is a type error listing the choices.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.level = lib.mkOption { type = lib.types.enum [ "info" "debug" ]; }; } { _file = "l.nix"; level = "verbose"; } ];
}).config
