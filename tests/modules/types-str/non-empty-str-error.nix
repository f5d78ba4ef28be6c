# nonEmptyStr: an empty definition is a type error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.s = lib.mkOption { type = lib.types.nonEmptyStr; }; } { _file = "e.nix"; s = ""; } ];
}).config
