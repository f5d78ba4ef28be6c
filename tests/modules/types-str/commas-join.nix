# commas joins definitions with commas.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.c = lib.mkOption { type = lib.types.commas; }; } { c = "a"; } { c = "b,c"; } ];
}).config
