# An undeclared definition under a property shows the property as it was written.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { default = 1; }; } { _file = "p.nix"; config = lib.mkIf false { zzz = lib.mkForce 1; }; } ];
}).config
