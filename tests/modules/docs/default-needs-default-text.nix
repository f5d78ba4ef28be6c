# A default that cannot be evaluated for the docs asks for a defaultText.
let lib = import ../../../lib; in
let
  r = lib.evalModules {
    modules = [ ({ config, ... }: {
      options.name = lib.mkOption { type = lib.types.str; description = "n"; };
      options.greeting = lib.mkOption { type = lib.types.str; default = "hello ${config.name}"; description = "g"; };
    }) ];
  };
in
lib.optionsToDocList { inherit (r.options) greeting; }
