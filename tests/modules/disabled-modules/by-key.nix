# An attribute set with a `key` disables the module with that key.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }
    { key = "noisy"; l = [ "noisy" ]; }
    { key = "quiet"; l = [ "quiet" ]; }
    { disabledModules = [ { key = "noisy"; } ]; }
  ];
}).config
