# A later module can override the base with mkForce.
let lib = import ../../../lib; in
let
  base = lib.evalModules { modules = [ { options.x = lib.mkOption { type = lib.types.str; }; config.x = "base"; } ]; };
in
(base.extendModules { modules = [ { x = lib.mkForce "extended"; } ]; }).config.x
