# mkIf inside a submodule definition may read the submodule's config.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule ({ config, ... }: {
        options.enable = lib.mkEnableOption "s";
        options.port = lib.mkOption { type = lib.types.int; default = 0; };
        config = lib.mkIf config.enable { port = 80; };
      }); }; }
    { s.enable = true; }
  ];
}).config
