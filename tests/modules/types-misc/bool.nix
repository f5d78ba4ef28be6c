# bool: equal definitions merge, different ones conflict.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.b = lib.mkOption { type = lib.types.bool; }; } { _file = "t.nix"; b = true; } { _file = "f.nix"; b = false; } ];
}).config
