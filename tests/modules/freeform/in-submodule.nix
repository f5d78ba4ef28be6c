# A submodule may have a freeform type: settings-style options.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.settings = lib.mkOption {
        type = lib.types.submodule {
          freeformType = with lib.types; attrsOf (oneOf [ str int bool ]);
          options.port = lib.mkOption { type = lib.types.port; default = 8080; };
        };
        default = { };
      }; }
    { settings = { log_level = "info"; workers = 4; }; }
  ];
}).config
