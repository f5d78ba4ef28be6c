# mkForce (50) beats plain definitions.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { x = 1; } { x = lib.mkForce 9; } { x = 2; }
  ];
}).config
