# mkDefault (1000) loses to a plain definition.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { x = lib.mkDefault 1; }
    { x = 2; }
  ];
}).config
