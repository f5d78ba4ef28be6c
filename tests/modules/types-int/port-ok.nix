# port accepts 0 and 65535.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.port; }; options.b = lib.mkOption { type = lib.types.port; }; } { a = 0; b = 65535; } ];
}).config
