# Each tag must be an option (mkOption), not a bare type.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.x = mkOption { type = types.attrTag { a = types.int; }; default = { a = 1; }; }; }
]; }).config.x
