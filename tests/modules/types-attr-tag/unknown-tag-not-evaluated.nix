# An unknown tag is an error, and its value is not evaluated for it.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.x = mkOption { type = types.attrTag { a = mkOption { type = types.int; }; }; }; }
  { _file = "x.nix"; x.b = throw "not evaluated"; }
]; }).config.x
