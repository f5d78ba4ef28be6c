# coercedTo refuses to coerce from a submodule type.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  { options.x = mkOption { type = types.coercedTo (types.submodule { }) (x: "s") types.str; }; config.x = { }; }
]; }).config.x
