# A readOnly option with one definition is fine.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; readOnly = true; }; }
    { x = 1; }
  ];
}).config
