# Disabling a module that is not part of the evaluation changes nothing.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { default = 1; }; }
    { disabledModules = [ ./not-loaded-is-fine.nix { key = "nothing"; } ]; }
  ];
}).config
