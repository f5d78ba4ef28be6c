# lines joins definitions with newlines.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.t = lib.mkOption { type = lib.types.lines; }; } { t = "a"; } { t = "b\n"; } { t = "c"; } ];
}).config
