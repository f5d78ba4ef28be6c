# Freeform values are part of `config`, so other modules can read them.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.attrsOf lib.types.str; options.greeting = lib.mkOption { type = lib.types.str; }; }
    ({ config, ... }: { greeting = "hello ${config.who}"; })
    { who = "world"; }
  ];
}).config
