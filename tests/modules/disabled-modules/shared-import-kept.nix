# A module imported by a disabled module and by a kept one stays.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }
    ./shared-import-kept.d/parent.nix
    { imports = [ ./shared-import-kept.d/child.nix ]; }
    { disabledModules = [ ./shared-import-kept.d/parent.nix ]; }
  ];
}).config
