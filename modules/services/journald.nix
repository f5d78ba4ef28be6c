# systemd-journald settings: a drop-in in /usr/lib/systemd/journald.conf.d (journald starts long
# before /etc is complete on first boot, so its configuration lives in /usr), and optionally
# systemd-journal-upload, which sends the journal to a systemd-journal-remote server.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf;
  sd = import ../system/systemd/lib.nix { inherit lib; };
  cfg = config.services.journald;

  settings = {
    Storage = cfg.storage;
    SystemMaxUse = cfg.systemMaxUse;
    MaxRetentionSec = cfg.maxRetentionSec;
    ForwardToSyslog = cfg.forwardToSyslog;
    ForwardToKMsg = cfg.forwardToKMsg;
    ForwardToConsole = cfg.forwardToConsole;
  };

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
    maxRetentionSec = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "1month";
      description = ''
        `MaxRetentionSec=`: entries older than this are deleted (a time span: `2weeks`,
        `1month`, `1y`). `null`: kept until the space limits remove them.
      '';
    };
    forwardToSyslog = mkOption {
      type = types.bool;
      default = false;
      description = ''
        `ForwardToSyslog=`: pass every message on to a syslog daemon (its socket
        /run/systemd/journal/syslog). Off, because a sonix image has no syslog daemon unless
        one is added; Debian's own drop-in that turns it on (journald.conf.d/syslog.conf) is
        replaced by an empty one so that this option decides.
      '';
    };
    forwardToKMsg = mkOption {
      type = types.bool;
      default = false;
      description = "`ForwardToKMsg=`: copy messages to the kernel log buffer (dmesg), up to `MaxLevelKMsg=` (notice).";
    };
    forwardToConsole = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        `ForwardToConsole=`: write messages to the console (/dev/console, or `TTYPath=` in
        {option}`services.journald.extraConfig`), up to `MaxLevelConsole=` (info).
      '';
    };
    extraConfig = mkOption {
      type = types.lines;
      default = "";
      example = "Compress=no\nMaxLevelConsole=warning\n";
      description = "Lines added to the `[Journal]` section (see journald.conf(5)).";
    };

    upload = {
      enable = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Whether systemd-journal-upload sends this machine's journal to a
          systemd-journal-remote server ({option}`services.journald.upload.url`). It keeps its
          place (a cursor in /var/lib/private/systemd/journal-upload), so entries written while
          the server was unreachable are sent later. Adds the systemd-journal-remote package.
        '';
      };
      url = mkOption {
        type = types.strMatching "https?://[^ ]+";
        example = "https://logs.example.com:19532";
        description = ''
          The server (`URL=`). systemd-journal-remote listens on port 19532. For `https` the
          client key and certificates default to /etc/ssl/private/journal-upload.pem,
          /etc/ssl/certs/journal-upload.pem and /etc/ssl/ca/trusted.pem; set others with
          {option}`services.journald.upload.extraConfig`.
        '';
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
        example = "ServerKeyFile=/etc/ssl/private/upload.key\nTrustedCertificateFile=/etc/ssl/certs/logs-ca.pem\n";
        description = "Lines added to the `[Upload]` section (see journal-upload.conf(5)).";
      };
    };
  };

  config = lib.mkMerge [
    {
      system.usrFiles = {
        "lib/systemd/journald.conf.d/50-sonix.conf".text = sd.renderDropin "Journal" settings cfg.extraConfig;
        # Debian's drop-in sets ForwardToSyslog=yes and sorts after 50-sonix.conf, so it would
        # win: it is replaced (same name) to leave the decision to 50-sonix.conf.
        "lib/systemd/journald.conf.d/syslog.conf".text = ''
          # Replaced by sonix: Debian's ForwardToSyslog=yes. The setting is in 50-sonix.conf
          # (services.journald.forwardToSyslog).
        '';
      };
    }
    (mkIf cfg.upload.enable {
      environment.packages = [ pkgs.systemd-journal-remote ];
      system.usrFiles."lib/systemd/journal-upload.conf.d/50-sonix.conf".text =
        sd.renderDropin "Upload" { URL = cfg.upload.url; } cfg.upload.extraConfig;
      # The packaged unit (DynamicUser, After/Wants=network-online.target) exits when the
      # server does not answer and restarts with a growing delay (up to a minute). Its first
      # restarts come within seconds, so the default start limit (5 starts in 10 s) could
      # leave it failed for good: a log server that is down at boot must not end the uploads.
      systemd.services.systemd-journal-upload = {
        overrideStrategy = "asDropin";
        unitConfig.StartLimitIntervalSec = 0;
      };
      systemd.targets.multi-user.wants = [ "systemd-journal-upload.service" ];
    })
  ];
}
