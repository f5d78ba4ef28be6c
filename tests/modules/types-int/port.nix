# port is a 16-bit unsigned integer.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.port = lib.mkOption { type = lib.types.port; }; } { _file = "p.nix"; port = 70000; } ];
}).config
