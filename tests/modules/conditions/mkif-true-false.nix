# mkIf true keeps a definition, mkIf false drops it.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; }
    { l = lib.mkIf true [ "yes" ]; }
    { l = lib.mkIf false [ "no" ]; }
  ];
}).config
