# bool rejects strings like "true".
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.b = lib.mkOption { type = lib.types.bool; }; } { _file = "t.nix"; b = "true"; } ];
}).config
