# Disabling a module also drops what only it imported.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }
    ./imports-go-too.d/parent.nix
    { disabledModules = [ ./imports-go-too.d/parent.nix ]; }
  ];
}).config
