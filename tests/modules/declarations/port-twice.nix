# An option declared twice as a port keeps the port type (names and descriptions as in NixOS).
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [ { options.p = lib.mkOption { type = lib.types.port; }; } { options.p = lib.mkOption { type = lib.types.port; default = 22; }; } ];
}).options.p; in
{ inherit (o) value; inherit (o.type) name description; }
