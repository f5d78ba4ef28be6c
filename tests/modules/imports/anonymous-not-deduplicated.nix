# Equal anonymous modules without a key are separate modules.
let
  lib = import ../../../lib;
  m = { items = [ "x" ]; };
in
(lib.evalModules {
  modules = [ { options.items = lib.mkOption { type = lib.types.listOf lib.types.str; }; } m m ];
}).config
