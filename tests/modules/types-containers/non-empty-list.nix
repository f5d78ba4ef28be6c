# nonEmptyListOf rejects the empty list.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.nonEmptyListOf lib.types.str; }; } { _file = "e.nix"; l = [ ]; } ];
}).config
