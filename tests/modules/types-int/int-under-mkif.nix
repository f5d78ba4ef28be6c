# An int definition under mkIf is checked after the condition is discharged.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.i = lib.mkOption { type = lib.types.int; }; } { i = lib.mkIf true "one"; } ];
}).config
