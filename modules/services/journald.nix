# systemd-journald settings: a drop-in in /usr/lib/systemd/journald.conf.d (journald starts long
# before /etc is complete on first boot, so its configuration lives in /usr).
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.journald;
in
{
  options.services.journald = {
    storage = mkOption {
      type = types.enum [ "persistent" "volatile" "auto" "none" ];
      default = "persistent";
      description = ''
        Where the journal is kept (`Storage=`): `persistent` in /var/log/journal on the root
        partition (created if missing), `volatile` in /run only (lost at reboot), `auto`
        persistent only if /var/log/journal exists, `none` nowhere (forwarding only).
      '';
    };
    systemMaxUse = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "500M";
      description = "`SystemMaxUse=`: the most disk space the persistent journal may take (default: 10% of the file system, at most 4G).";
    };
    extraConfig = mkOption {
      type = types.lines;
      default = "";
      example = "MaxRetentionSec=1month\nForwardToConsole=yes\n";
      description = "Lines added to the `[Journal]` section (see journald.conf(5)).";
    };
  };

  config.system.usrFiles."lib/systemd/journald.conf.d/50-sonix.conf".text = lib.concatStringsSep "\n" (
    [ "[Journal]" "Storage=${cfg.storage}" ]
    ++ lib.optional (cfg.systemMaxUse != null) "SystemMaxUse=${cfg.systemMaxUse}"
    ++ lib.optional (cfg.extraConfig != "") (lib.removeSuffix "\n" cfg.extraConfig)) + "\n";
}
