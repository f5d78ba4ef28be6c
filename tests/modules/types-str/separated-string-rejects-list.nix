# separatedString takes strings only.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.p = lib.mkOption { type = lib.types.lines; }; } { _file = "l.nix"; p = [ "a" ]; } ];
}).config
