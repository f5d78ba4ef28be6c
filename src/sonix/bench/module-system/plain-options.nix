# N declared int options, half of them defined.
{ n ? 1000 }:
let lib = import ../../../../lib; in
(lib.evalModules { modules = [
  { options = builtins.listToAttrs (builtins.genList (i: { name = "o${toString i}";
      value = lib.mkOption { type = lib.types.int; default = i; description = "Option ${toString i}."; }; }) n); }
  { config = builtins.listToAttrs (builtins.genList (i: { name = "o${toString i}"; value = i * 2; }) (n / 2));
  }
]; }).config
