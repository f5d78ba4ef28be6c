# attrsOf (submodule ...) with N entries of 5 options each.
{ n ? 1000 }:
let lib = import ../../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.entries = mkOption {
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options.a = mkOption { type = types.str; default = name; };
        options.b = mkOption { type = types.int; default = 1; };
        options.c = mkOption { type = types.bool; default = false; };
        options.d = mkOption { type = types.listOf types.str; default = [ ]; };
        options.e = mkOption { type = types.nullOr types.port; default = null; };
      }));
    }; }
  { entries = builtins.listToAttrs (builtins.genList (i: { name = "e${toString i}";
      value = { b = i; d = [ "x" ]; }; }) n); }
]; }).config
