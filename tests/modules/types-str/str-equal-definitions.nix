# str: equal definitions merge to that string.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.s = lib.mkOption { type = lib.types.str; }; } { s = "a"; } { s = "a"; } ];
}).config
