# either: definitions of different branches must be a single definition.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.either lib.types.int lib.types.str; }; } { _file = "i.nix"; a = 1; } { _file = "s.nix"; a = "1"; } ];
}).config
