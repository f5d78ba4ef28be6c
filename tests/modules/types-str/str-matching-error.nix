# strMatching: a non-matching definition is a type error showing the pattern.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.h = lib.mkOption { type = lib.types.strMatching "[a-z]+"; }; } { _file = "h.nix"; h = "Host1"; } ];
}).config
