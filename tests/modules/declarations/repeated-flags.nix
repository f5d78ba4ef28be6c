# Fields other than default, example, description and apply may be repeated (as in NixOS).
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [
    { options.v = lib.mkOption { type = lib.types.str; readOnly = true; internal = true; default = "1"; }; }
    { options.v = lib.mkOption { readOnly = true; internal = true; }; }
  ];
}).options.v; in
{ inherit (o) value readOnly internal; }
