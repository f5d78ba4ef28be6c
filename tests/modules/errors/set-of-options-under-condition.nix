# A condition around a non-set definition of a set of options is reported, not a Nix type error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.net.host = lib.mkOption { type = lib.types.str; }; } { _file = "n.nix"; net = lib.mkIf true "example.org"; } ];
}).config
