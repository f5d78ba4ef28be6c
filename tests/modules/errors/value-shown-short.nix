# Large values are shortened in messages.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.n = lib.mkOption { type = lib.types.int; }; } { _file = "a.nix"; n = { a.b.c.d = [ [ 1 ] ]; }; } ];
}).config
