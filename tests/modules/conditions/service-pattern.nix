# The usual service module: an enable option gating definitions into shared option trees.
let lib = import ../../../lib; in
let
  systemd = { lib, ... }: {
    options.systemd.services = lib.mkOption {
      default = { };
      type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: {
        options.wants = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
        options.environment = lib.mkOption { type = lib.types.attrsOf lib.types.str; default = { }; };
        options.description = lib.mkOption { type = lib.types.str; default = "${name} service"; };
      }));
    };
  };
  web = { config, lib, ... }: let cfg = config.services.web; in {
    options.services.web = {
      enable = lib.mkEnableOption "the web server";
      port = lib.mkOption { type = lib.types.port; default = 80; };
    };
    config = lib.mkIf cfg.enable {
      systemd.services.web = {
        wants = [ "network-online.target" ];
        environment.PORT = toString cfg.port;
      };
    };
  };
  db = { config, lib, ... }: {
    options.services.db.enable = lib.mkEnableOption "the database";
    config.systemd.services = lib.mkIf config.services.db.enable { db.wants = [ "web.service" ]; };
  };
in
(lib.evalModules {
  modules = [
    systemd web db
    { services.web = { enable = true; port = 8080; }; }
    { systemd.services.web.environment.DEBUG = "1"; }
  ];
}).config.systemd
