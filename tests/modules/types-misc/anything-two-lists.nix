# anything refuses two list definitions (as recent NixOS does): their order would be arbitrary.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.anything; }; } { _file = "one.nix"; a.l = [ 1 ]; } { _file = "two.nix"; a.l = [ 2 ]; } ];
}).config
