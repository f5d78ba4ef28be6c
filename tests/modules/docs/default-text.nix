# defaultText is shown instead of a default that depends on other options.
let lib = import ../../../lib; in
let
  r = lib.evalModules {
    modules = [ ({ config, ... }: {
      options.name = lib.mkOption { type = lib.types.str; description = "n"; };
      options.greeting = lib.mkOption {
        type = lib.types.str; default = "hello ${config.name}"; description = "g";
        defaultText = lib.literalExpression ''"hello ''${config.name}"'';
      };
    }) ];
  };
in
map (e: e.default or null) (lib.optionsToDocList { inherit (r.options) greeting name; })
