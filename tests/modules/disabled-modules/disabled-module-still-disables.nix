# disabledModules is read from every module, the disabled ones too (as in NixOS).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }
    { key = "a"; disabledModules = [ { key = "b"; } ]; l = [ "a" ]; }
    { key = "b"; disabledModules = [ { key = "a"; } ]; l = [ "b" ]; }
    { key = "c"; l = [ "c" ]; }
  ];
}).config
