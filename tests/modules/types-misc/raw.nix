# raw takes one definition and does not look inside it.
let lib = import ../../../lib; in
let v = (lib.evalModules {
  modules = [ { options.r = lib.mkOption { type = lib.types.raw; }; } { r = { x = lib.mkIf false 1; }; } ];
}).config.r; in
builtins.attrNames v.x
