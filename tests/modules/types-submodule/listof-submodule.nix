# listOf submodule evaluates each element on its own.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.rules = lib.mkOption { type = lib.types.listOf (lib.types.submodule { options.port = lib.mkOption { type = lib.types.port; }; options.proto = lib.mkOption { default = "tcp"; }; }); }; }
    { rules = [ { port = 22; } ]; } { rules = [ { port = 53; proto = "udp"; } ]; }
  ];
}).config
