# The tag's value is checked by the tag's type, at the path of the tag.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.x = mkOption { type = types.attrTag { a = mkOption { type = types.int; }; }; }; }
  { _file = "x.nix"; x.a = "one"; }
]; }).config.x
