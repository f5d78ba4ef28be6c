# Option records' declarationPositions: where each declaration is written (file, line,
# column), in the order of `declarations`; a generated set of options gives the file only.
let
  lib = import ../../../lib;
  inherit (lib) mkOption types;
  generated = builtins.mapAttrs (_: v: v) { made = mkOption { type = types.int; }; };
  eval = lib.evalModules {
    modules = [
      {
        _file = "one.nix";
        options.port = mkOption { type = types.port; };
        options.sub = mkOption { type = types.submodule { }; };
      }
      { _file = "two.nix"; options.port = mkOption { };
        options.sub.inner = mkOption { type = types.int; }; }
      { _file = "three.nix"; options = generated; }
    ];
  };
  show = map (p: if p.line == null then "${baseNameOf p.file}" else "${baseNameOf p.file}:${toString p.line}:${toString p.column}");
in
{
  port = show eval.options.port.declarationPositions;
  sub = show eval.options.sub.declarationPositions;
  made = show eval.options.made.declarationPositions;
}
