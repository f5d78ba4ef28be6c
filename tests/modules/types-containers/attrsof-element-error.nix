# attrsOf: a bad element names the attribute's path.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.m = lib.mkOption { type = lib.types.attrsOf lib.types.int; }; } { _file = "a.nix"; m.good = 1; m.bad = true; } ];
}).config
