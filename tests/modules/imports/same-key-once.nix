# Anonymous modules with the same `key` are evaluated once.
let
  lib = import ../../../lib;
  m = { key = "shared"; items = [ "once" ]; };
in
(lib.evalModules {
  modules = [
    { options.items = lib.mkOption { type = lib.types.listOf lib.types.str; }; }
    m { imports = [ m ]; } m
  ];
}).config
