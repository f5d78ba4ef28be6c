# anything takes a single list definition as is.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.anything; }; } { a.l = [ 1 { b = 2; } ]; } ];
}).config
