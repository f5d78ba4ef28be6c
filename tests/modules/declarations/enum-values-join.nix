# Two enum declarations join their values.
let lib = import ../../../lib; in
let r = lib.evalModules {
  modules = [
    { options.mode = lib.mkOption { type = lib.types.enum [ "a" "b" ]; }; }
    { options.mode = lib.mkOption { type = lib.types.enum [ "b" "c" ]; }; }
    { mode = "c"; }
  ];
}; in
{ inherit (r.config) mode; type = r.options.mode.type.description; }
