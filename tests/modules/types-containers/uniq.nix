# uniq refuses a second definition, even where the element type would merge.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.l = lib.mkOption { type = lib.types.uniq (lib.types.listOf lib.types.int); }; } { _file = "a.nix"; l = [ 1 ]; } { _file = "b.nix"; l = [ 2 ]; } ];
}).config
