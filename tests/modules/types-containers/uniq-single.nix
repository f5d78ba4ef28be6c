# uniq with one definition merges it by the element type.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.uniq (lib.types.listOf lib.types.int); default = [ 0 ]; }; } { l = [ 1 (lib.mkIf false 2) ]; } ];
}).config
