# anything: definitions of different kinds are an error.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.anything; }; } { _file = "one.nix"; a = 1; } { _file = "two.nix"; a = "1"; } ];
}).config
