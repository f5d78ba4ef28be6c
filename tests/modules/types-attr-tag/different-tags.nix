# Definitions with different tags cannot be merged.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.x = mkOption { type = types.attrTag { a = mkOption { type = types.int; }; b = mkOption { type = types.int; }; }; }; }
  { _file = "a.nix"; x.a = 1; }
  { _file = "b.nix"; x.b = 2; }
]; }).config.x
