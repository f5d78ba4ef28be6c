# The default counts as mkOptionDefault (1500): both merge at the same priority.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ "default" ]; }; }
    { l = lib.mkOptionDefault [ "optionDefault" ]; }
  ];
}).config
