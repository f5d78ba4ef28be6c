# Conditions may read all of config: mkIf on a whole config is pushed down to each option.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.enable = lib.mkEnableOption "it"; options.port = lib.mkOption { type = lib.types.port; default = 80; }; }
    ({ config, ... }: { config = lib.mkIf config.enable { port = 443; }; })
    { enable = true; }
  ];
}).config
