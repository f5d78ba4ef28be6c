# A value with two attributes is no tagged value.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.x = mkOption { type = types.attrTag { a = mkOption { type = types.int; }; b = mkOption { type = types.int; }; }; }; }
  { _file = "x.nix"; x = { a = 1; b = 2; }; }
]; }).config.x
