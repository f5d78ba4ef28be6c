# lazyAttrsOf does not evaluate an attribute that is never read.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.m = lib.mkOption { type = lib.types.lazyAttrsOf lib.types.int; }; } { m.a = 1; m.b = throw "never read"; } ];
}).config.m.a
