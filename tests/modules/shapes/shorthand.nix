# Without `options` or `config`, a module's attributes are its config.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { x = 4; }
  ];
}).config
