# Every kind of conflict suggests changing a priority, here nullOr's.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.nullOr lib.types.int; }; } { _file = "n.nix"; a = null; } { _file = "v.nix"; a = 1; } ];
}).config
