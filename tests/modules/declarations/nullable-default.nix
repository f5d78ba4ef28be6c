# `default = null` is a real default, unlike no default.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.x = lib.mkOption { type = lib.types.nullOr lib.types.int; default = null; }; } ];
}).config
