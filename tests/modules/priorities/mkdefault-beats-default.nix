# mkDefault beats the option's default.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; default = 1; }; }
    { x = lib.mkDefault 3; }
  ];
}).config
