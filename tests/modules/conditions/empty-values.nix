# The empty values of attrsOf ({ }), listOf ([ ]) and nullOr (null) stand for an entry of a
# lazyAttrsOf whose definitions all vanished; types without one (int, nonEmptyListOf) give
# the "used but not defined" error when such an entry is read.
let
  lib = import ../../../lib;
  inherit (lib) mkOption mkIf types;
  eval = lib.evalModules {
    modules = [
      { options = {
          attrs = mkOption { type = types.lazyAttrsOf (types.attrsOf types.int); };
          list = mkOption { type = types.lazyAttrsOf (types.listOf types.int); };
          null = mkOption { type = types.lazyAttrsOf (types.nullOr types.int); };
          int = mkOption { type = types.lazyAttrsOf types.int; };
        };
        config = {
          attrs.a = mkIf false { x = 1; };
          list.a = mkIf false [ 1 ];
          null.a = mkIf false 1;
          int.a = mkIf false 1;
        };
      }
    ];
  };
in
{
  attrs = eval.config.attrs.a;
  list = eval.config.list.a;
  null = eval.config.null.a;
  int = (builtins.tryEval eval.config.int.a).success;
}
