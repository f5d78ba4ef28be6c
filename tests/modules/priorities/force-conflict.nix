# Two different mkForce definitions still conflict.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { _file = "a.nix"; x = lib.mkForce 1; } { _file = "b.nix"; x = lib.mkForce 2; }
  ];
}).config
