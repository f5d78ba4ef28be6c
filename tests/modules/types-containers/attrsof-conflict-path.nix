# attrsOf: a conflict inside names the full path of the attribute.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.m = lib.mkOption { type = lib.types.attrsOf lib.types.str; }; } { _file = "a.nix"; m."x.y" = "1"; } { _file = "b.nix"; m."x.y" = "2"; } ];
}).config
