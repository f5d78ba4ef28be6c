# A single definition of an optionType option is its value, untouched: a type whose `merge`
# was replaced by hand keeps it.
let
  lib = import ../../../lib;
  inherit (lib) mkOption types;
  base = types.attrsOf (types.submodule { options.x = mkOption { type = types.int; }; });
in
(lib.evalModules { modules = [
  {
    freeformType = base // { merge = loc: defs: { wrapped = base.merge loc defs; }; };
    config.a.x = 1;
  }
]; }).config
