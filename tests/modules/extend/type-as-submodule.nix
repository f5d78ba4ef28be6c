# A configuration's `type` is a submodule type of its modules.
let lib = import ../../../lib; in
let
  conf = lib.evalModules { modules = [ { options.x = lib.mkOption { type = lib.types.int; default = 1; }; } ]; };
in
(lib.evalModules {
  modules = [ { options.inner = lib.mkOption { type = conf.type; default = { }; }; } { inner.x = 5; } ];
}).config
