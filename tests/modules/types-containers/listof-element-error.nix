# listOf: a bad element is reported with its definition and entry number.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; } { _file = "one.nix"; l = [ 1 ]; } { _file = "two.nix"; l = [ 2 "three" ]; } ];
}).config
