# A plain definition (100) beats the option's default (1500).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; default = 1; }; }
    { x = 2; }
  ];
}).config
