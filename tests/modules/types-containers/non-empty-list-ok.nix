# nonEmptyListOf merges like listOf.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.nonEmptyListOf lib.types.str; }; } { l = [ "a" ]; } { l = [ "b" ]; } ];
}).config
