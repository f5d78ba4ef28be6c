# `apply` also transforms the default.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.x = lib.mkOption { type = lib.types.int; default = 2; apply = x: x * 10; }; } ];
}).config
