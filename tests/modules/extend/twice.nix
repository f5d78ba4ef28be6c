# An extended configuration can be extended again.
let lib = import ../../../lib; in
let
  base = lib.evalModules { modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; config.l = [ "a" ]; } ]; };
in
((base.extendModules { modules = [ { l = [ "b" ]; } ]; }).extendModules { modules = [ { l = [ "c" ]; } ]; }).config.l
