# Errors name the file of an imported module.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.x = lib.mkOption { type = lib.types.int; }; } ./file-of-imported.d/bad.nix ];
}).config
