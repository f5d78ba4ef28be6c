# extendModules evaluates again with more modules.
let lib = import ../../../lib; in
let
  base = lib.evalModules { modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; config.l = [ 1 ]; } ]; };
  more = base.extendModules { modules = [ { l = [ 2 ]; } ]; };
in
{ base = base.config.l; more = more.config.l; }
