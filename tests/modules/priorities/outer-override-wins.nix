# Nested overrides: the outermost priority counts (NixOS would reject the inner wrapper).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { x = lib.mkDefault (lib.mkForce 1); } { x = 2; }
  ];
}).config
