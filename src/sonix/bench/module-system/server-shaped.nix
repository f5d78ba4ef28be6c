# A synthetic server: 150 systemd-like services of 18 options (nested attrsOf/listOf),
# 40 users, 60 files, networking; each service renders a unit text.
let
  lib = import ../../../../lib;
  inherit (lib) mkOption mkIf mkDefault types;
  serviceOptions = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.str; default = "The ${name} service"; };
      wants = mkOption { type = types.listOf types.str; default = [ ]; };
      requires = mkOption { type = types.listOf types.str; default = [ ]; };
      after = mkOption { type = types.listOf types.str; default = [ ]; };
      before = mkOption { type = types.listOf types.str; default = [ ]; };
      environment = mkOption { type = types.attrsOf types.str; default = { }; };
      path = mkOption { type = types.listOf types.str; default = [ ]; };
      script = mkOption { type = types.lines; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      serviceConfig = mkOption {
        type = types.attrsOf (types.oneOf [ types.str types.int types.bool (types.listOf types.str) ]);
        default = { };
      };
      unitConfig = mkOption { type = types.attrsOf types.str; default = { }; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      startLimitBurst = mkOption { type = types.nullOr types.int; default = null; };
      user = mkOption { type = types.str; default = "root"; };
      group = mkOption { type = types.nullOr types.str; default = null; };
      sockets = mkOption { type = types.attrsOf (types.submodule {
        options.listen = mkOption { type = types.listOf types.str; default = [ ]; };
        options.accept = mkOption { type = types.bool; default = false; };
      }); default = { }; };
      text = mkOption { type = types.str; };
    };
    config = {
      after = mkIf config.enable [ "network.target" ];
      serviceConfig.User = mkDefault config.user;
      text = lib.concatStringsSep "\n" ([ "[Unit]" "Description=${config.description}" ]
        ++ map (u: "After=${u}") config.after
        ++ [ "[Service]" ] ++ lib.mapAttrsToList (k: v: "${k}=${toString v}") config.serviceConfig);
    };
  };
  core = { config, ... }: {
    options.services = mkOption { type = types.attrsOf (types.submodule serviceOptions); default = { }; };
    options.users = mkOption { type = types.attrsOf (types.submodule ({ name, ... }: {
      options.uid = mkOption { type = types.nullOr types.int; default = null; };
      options.home = mkOption { type = types.str; default = "/home/${name}"; };
      options.groups = mkOption { type = types.listOf types.str; default = [ ]; };
      options.keys = mkOption { type = types.listOf types.str; default = [ ]; };
    })); default = { }; };
    options.files = mkOption { type = types.attrsOf (types.submodule ({ name, ... }: {
      options.text = mkOption { type = types.lines; default = ""; };
      options.mode = mkOption { type = types.strMatching "[0-7]{4}"; default = "0644"; };
      options.target = mkOption { type = types.str; default = name; };
    })); default = { }; };
    options.networking.hostName = mkOption { type = types.str; default = "sonix"; };
    options.networking.interfaces = mkOption { type = types.attrsOf (types.submodule {
      options.dhcp = mkOption { type = types.bool; default = true; };
      options.addresses = mkOption { type = types.listOf types.str; default = [ ]; };
    }); default = { }; };
    options.rendered = mkOption { type = types.listOf types.str; default = [ ]; };
    config.rendered = lib.mapAttrsToList (n: s: s.text) config.services
      ++ lib.mapAttrsToList (n: f: f.target) config.files;
  };
  site = { config, ... }: {
    services = lib.listToAttrs (builtins.genList (i: { name = "svc${toString i}"; value = {
      wants = [ "a.service" "b.service" ];
      environment = { PORT = toString (8000 + i); MODE = "prod"; };
      serviceConfig = { ExecStart = "/usr/bin/svc --id ${toString i}"; Restart = "always"; LimitNOFILE = 65536; };
      script = "echo start ${toString i}";
      sockets.main.listen = [ "0.0.0.0:${toString (9000 + i)}" ];
    }; }) 150);
    users = lib.listToAttrs (builtins.genList (i: { name = "user${toString i}"; value = {
      uid = 1000 + i; groups = [ "wheel" ]; keys = [ "ssh-ed25519 AAAA${toString i}" ];
    }; }) 40);
    files = lib.listToAttrs (builtins.genList (i: { name = "etc/conf${toString i}"; value = {
      text = "setting = ${toString i}";
    }; }) 60);
    networking.interfaces.eth0 = { };
    networking.interfaces.eth1.addresses = [ "192.0.2.1/24" ];
  };
in
(lib.evalModules { modules = [ core site ]; }).config.rendered
