# Automatic updates from a signed channel (docs/updates.md): the sonix-update agent, its timer,
# the reboot strategy, and the boot-time units that notice a rollback and report a good boot.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption types mkIf optional;
  cfg = config.updates;
  days = [ "Mon" "Tue" "Wed" "Thu" "Fri" "Sat" "Sun" ];
  keyFile = i: "lib/sonix/update-keys/${toString i}.gpg";
  agentConfig = {
    inherit (config.image) name;
    inherit (cfg) channel strategy activation timeout;
    tries = config.boot.loader.tries;
    keyrings = lib.imap0 (i: _: "/usr/${keyFile i}") cfg.trustedKeys;
  } // lib.optionalAttrs (cfg.strategy == "maintenance-window") {
    window = {
      inherit (cfg.maintenanceWindow) days start timeZone;
      minutes = cfg.maintenanceWindow.duration;
    };
  } // lib.optionalAttrs config.boot.secureBoot.enable {
    # Every new UKI must verify against the image's db certificate (modules/system/secure-boot.nix).
    secureBoot.certificate = "/usr/lib/sonix/secure-boot/db.crt";
  } // lib.optionalAttrs (cfg.strategy == "fleet-lock") {
    fleetLock = { inherit (cfg.fleetLock) url group; }
      // lib.optionalAttrs (cfg.fleetLock.tokenFile != null) { inherit (cfg.fleetLock) tokenFile; };
  };
  # The window's opening times as a calendar spec, so the agent also runs when a window opens.
  windowCalendar = let w = cfg.maintenanceWindow; in
    "${if w.days == [ ] then "" else lib.concatStringsSep "," w.days + " "}*-*-* ${w.start}:00 ${w.timeZone}";
in
{
  options.updates = {
    enable = mkEnableOption "automatic updates from a signed release channel";

    channel = mkOption {
      type = types.strMatching "https?://.+";
      example = "https://updates.example.com/sonix/stable/";
      description = ''
        The channel's URL: a directory of releases as `sonix release` writes it and any static
        web server (or `sonix serve`) serves it. A machine can follow another channel without a
        rebuild: `/etc/sonix/update.json` (`{"channel": "https://..."}`) overrides the values baked into
        the image.
      '';
    };

    trustedKeys = mkOption {
      type = types.listOf types.path;
      example = lib.literalExpression "[ ./keys/channel.gpg ]";
      description = ''
        OpenPGP public keys (binary, as `gpg --export` writes them; `sonix release` exports
        its key as `trusted.gpg`) that may sign the channel's `SHA256SUMS`. A release whose
        signature none of them made is not installed.
      '';
    };

    interval = mkOption {
      type = types.str;
      default = "1h";
      example = "15min";
      description = "How often the agent checks the channel (`OnUnitInactiveSec=` of sonix-update.timer).";
    };

    firstCheckDelay = mkOption {
      type = types.str;
      default = "5min";
      example = "30s";
      description = "The first check after boot (`OnBootSec=`): after the boot has been assessed, usually.";
    };

    timeout = mkOption {
      type = types.ints.between 120 86400;
      default = 3600;
      example = 7200;
      description = ''
        Seconds one run of the agent may take, downloads included (`TimeoutStartSec=` of
        sonix-update.service; the agent's own download deadline ends a minute before, so it
        stops with its own error). Raise it for large releases on slow links.
      '';
    };

    randomizedDelay = mkOption {
      type = types.str;
      default = "5min";
      example = "0";
      description = "`RandomizedDelaySec=` of the timer, so that a fleet does not hit the channel at once.";
    };

    strategy = mkOption {
      type = types.enum [ "immediate" "maintenance-window" "fleet-lock" "off" ];
      default = "immediate";
      example = "fleet-lock";
      description = ''
        When an installed release is activated: `immediate` (right after it is installed),
        `maintenance-window` (only inside {option}`updates.maintenanceWindow`), `fleet-lock`
        (only with a reboot slot from a FleetLock server, {option}`updates.fleetLock`, released
        once the new boot is assessed good, so a failing release stops a rollout) or `off`
        (install, and let the next reboot activate it).
      '';
    };

    activation = mkOption {
      type = types.enum [ "auto" "kexec" "reboot" ];
      default = "auto";
      description = ''
        How a release is activated. `auto` lets the agent pick the cheapest correct way and
        say why in the journal: `systemctl soft-reboot` into the new /usr when the kernel,
        initrd and command line are unchanged; kexec (kexec-tools is added to the image) when
        they changed; a firmware reboot on a fully emulated CPU (QEMU without KVM), where a
        kexec'd kernel starts slower than the firmware boots one, under Secure Boot (the
        locked-down kernel refuses to kexec Debian's kernel: docs/updates.md), or when kexec
        is not possible. `kexec` is `auto` that always prefers kexec to the firmware, except
        under Secure Boot. `reboot`
        always goes through the firmware and systemd-boot. Releases activated without
        systemd-boot are assessed by the agent: it blesses the entry after
        boot-complete.target, and a failed health check reboots into systemd-boot's own
        trial of the release.
      '';
    };

    maintenanceWindow = {
      days = mkOption {
        type = types.listOf (types.enum days);
        default = [ ];
        example = [ "Sat" "Sun" ];
        description = "Days on which the window opens (empty: every day).";
      };
      start = mkOption {
        type = types.strMatching "([01][0-9]|2[0-3]):[0-5][0-9]";
        default = "03:00";
        example = "22:30";
        description = "The time the window opens (HH:MM, in {option}`updates.maintenanceWindow.timeZone`).";
      };
      duration = mkOption {
        type = types.ints.positive;
        default = 60;
        example = 120;
        description = "Minutes the window stays open (it may run past midnight).";
      };
      timeZone = mkOption {
        type = types.str;
        default = "UTC";
        example = "Europe/Berlin";
        description = "The IANA time zone of the window (the image gets tzdata when it is not UTC).";
      };
    };

    fleetLock = {
      url = mkOption {
        type = types.str;
        default = "";
        example = "http://fleetlock.example.com:8080";
        description = "Base URL of a FleetLock server (`sonix fleetlock-server`, or any server Zincati can use).";
      };
      group = mkOption {
        type = types.str;
        default = "default";
        example = "web";
        description = "The FleetLock group: machines of a group share its reboot slots.";
      };
      tokenFile = mkOption {
        type = types.nullOr (types.strMatching "/.+");
        default = null;
        example = "/etc/sonix/fleetlock-token";
        description = ''
          A file on the machine (not in the image: a secret; provisioning or the admin puts
          it there) whose content is sent as `Authorization: Bearer <content>` with every
          FleetLock request, for a server started with `--token-file`. Read at each request.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.trustedKeys != [ ];
        message = "updates.trustedKeys is empty: no release could ever be verified. Add the channel's public key (`sonix release` prints where it is).";
      }
      {
        assertion = cfg.strategy != "fleet-lock" || cfg.fleetLock.url != "";
        message = ''updates.strategy = "fleet-lock" needs updates.fleetLock.url (the FleetLock server).'';
      }
      {
        assertion = config.boot.loader.tries > 0;
        message = "updates need boot counting to roll back: set boot.loader.tries to at least 1 (default 3).";
      }
    ];

    environment.packages = [ pkgs.gpgv ]
      ++ optional (cfg.activation != "reboot") pkgs.kexec-tools
      ++ optional (cfg.strategy == "maintenance-window" && cfg.maintenanceWindow.timeZone != "UTC") pkgs.tzdata;

    system.agents = [ "chunks" "common" "gpt" "records" "uki" "update" "versions" ];

    system.usrFiles = {
      "bin/sonix" = {
        mode = "0755";
        text = ''
          #!/usr/bin/python3
          # sonix on the machine: `sonix status`, `sonix update run|check|...` (docs/updates.md).
          import sys
          sys.path.insert(0, "/usr/lib/sonix")
          from agents.update import main
          sys.exit(main(sys.argv[1:]))
        '';
      };
      "lib/sonix/update.json".text = builtins.toJSON agentConfig + "\n";
    } // lib.listToAttrs (lib.imap0 (i: key: lib.nameValuePair (keyFile i) { source = key; }) cfg.trustedKeys);

    systemd.services.sonix-update = {
      description = "Check the release channel and install updates";
      documentation = [ "https://example.invalid/sonix/docs/updates.md" ];
      after = [ "network-online.target" "sonix-update-assess.service" ];
      wants = [ "network-online.target" ];
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "/usr/bin/sonix update run";
        TimeoutStartSec = "${toString cfg.timeout}s";
      };
    };

    systemd.timers.sonix-update.timerConfig = {
      OnBootSec = cfg.firstCheckDelay;
      OnUnitInactiveSec = cfg.interval;
      RandomizedDelaySec = cfg.randomizedDelay;
    } // lib.optionalAttrs (cfg.strategy == "maintenance-window") {
      OnCalendar = windowCalendar;
    };

    # Every boot: was the newest release rolled back from? (Before anything may install.)
    systemd.services.sonix-update-assess = {
      description = "Notice an automatic rollback and record the failed release";
      after = [ "local-fs.target" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "/usr/bin/sonix update assess";
        TimeoutStartSec = "2min";  # local files only
      };
    };

    # After the health checks passed: the update is complete, the fleet lock is released.
    systemd.services.sonix-update-steady-state = {
      description = "Report a good boot (update complete, FleetLock slot released)";
      after = [ "boot-complete.target" "network-online.target" ];
      requires = [ "boot-complete.target" ];
      wants = [ "network-online.target" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "/usr/bin/sonix update steady-state";
        TimeoutStartSec = "2min";  # one FleetLock request (30 s) at most
        Restart = "on-failure";
        RestartSec = "30s";
      };
    };

    systemd.targets.timers.wants = [ "sonix-update.timer" ];
    systemd.targets.multi-user.wants = [ "sonix-update-assess.service" "sonix-update-steady-state.service" ];
  };
}
