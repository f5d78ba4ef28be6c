# listOf concatenates the definitions' lists.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; } { l = [ 1 2 ]; } { l = [ ]; } { l = [ 3 ]; } ];
}).config
