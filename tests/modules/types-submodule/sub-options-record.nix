# The option records of a submodule are reachable through `type.getSubOptions`.
let lib = import ../../../lib; in
let
  r = lib.evalModules { modules = [ { options.u = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; description = "id"; }; }); }; } ]; };
  sub = r.options.u.type.getSubOptions r.options.u.loc;
in
{ inherit (sub.uid) loc description; }
