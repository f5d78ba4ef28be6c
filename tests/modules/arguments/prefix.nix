# `prefix` is prepended to option paths in records and messages.
let lib = import ../../../lib; in
(lib.evalModules {
  prefix = [ "outer" ];
  modules = [ { options.inner = lib.mkOption { type = lib.types.int; default = 1; }; } ];
}).options.inner.loc
