# listOf: a non-list definition is a type error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; } { _file = "s.nix"; l = "a"; } ];
}).config
