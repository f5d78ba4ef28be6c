# A module with explicit `options` and `config` attributes.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.x = lib.mkOption { type = lib.types.int; }; config.x = 3; } ];
}).config
