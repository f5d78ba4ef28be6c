# hardware.fwupd: the firmware update daemon (Debian's fwupd 2.0, started by D-Bus activation
# through its packaged fwupd.service), an optional local metadata source (a directory of .cab
# files as an fwupd "directory" remote, with the LVFS switched off), and automatic firmware
# updates that run only in the maintenance window of the updates module and reboot only as
# its strategy allows (`sonix update reboot-if-allowed`, docs/containers.md).
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf optional optionalAttrs;
  cfg = config.hardware.fwupd;
  window = config.updates.maintenanceWindow;

  # A path of the configuration (or a store path) is shipped in /usr; a plain string is a
  # directory on the machine.
  shipped = cfg.localSource != null
    && (builtins.isPath cfg.localSource || lib.hasPrefix builtins.storeDir (toString cfg.localSource));
  localDir = if shipped then "/usr/share/sonix/fwupd/local" else toString cfg.localSource;

  # The window's opening time as a calendar spec (the same as the update agent's timer).
  windowCalendar =
    "${if window.days == [ ] then "" else lib.concatStringsSep "," window.days + " "}*-*-* ${window.start}:00 ${window.timeZone}";

  # fwupdmgr's exit codes: 0 done, 2 nothing to do (no update, metadata current, no reboot
  # needed); anything else is an error.
  updateScript = ''
    status=0
    /usr/bin/fwupdmgr refresh || status=$?
    case $status in
      0|2) ;;
      *) echo "<4>fwupdmgr refresh failed ($status): installing from the metadata fwupd already has" >&2 ;;
    esac
    # --assume-yes answers every question with yes, so the questions that must not be asked
    # are switched off: sending reports to the LVFS (--no-unreported-check) and enabling
    # disabled download remotes such as the LVFS (--no-remote-check).
    status=0
    /usr/bin/fwupdmgr update --assume-yes --no-reboot-check --no-unreported-check --no-remote-check --no-metadata-check || status=$?
    case $status in
      0|2) ;;
      *) echo "<3>fwupdmgr update failed ($status)" >&2; exit "$status" ;;
    esac
    status=0
    /usr/bin/fwupdmgr check-reboot-needed >/dev/null || status=$?
    case $status in
      0) exec /usr/bin/sonix update reboot-if-allowed --reason firmware ;;
      2) echo "no firmware update waits for a reboot" ;;
      *) echo "<3>fwupdmgr check-reboot-needed failed ($status)" >&2; exit "$status" ;;
    esac
  '';
in
{
  imports = [ ./updates.nix ];

  options.hardware.fwupd = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether fwupd is installed: the daemon (Debian's `fwupd.service`, started on demand
        over D-Bus when `fwupdmgr` asks) and `fwupdmgr`. Firmware is only flashed by hand
        unless {option}`hardware.fwupd.automaticUpdates.enable` is set.
      '';
    };

    localSource = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./firmware";
      description = ''
        A directory of firmware cabinet archives (`.cab`, as the LVFS publishes them) that
        fwupd reads as a remote of the directory kind (`MetadataURI=file://...`, remote
        `sonix-local` in /etc/fwupd/remotes.d): fwupd builds the metadata from the archives
        themselves, nothing is downloaded. A path of the configuration is copied into the
        image (`/usr/share/sonix/fwupd/local`, so the firmware comes with the release); a
        string is a directory on the machine (for example one that provisioning fills).
      '';
    };

    disableLvfs = mkOption {
      type = types.bool;
      default = cfg.localSource != null;
      defaultText = lib.literalExpression "hardware.fwupd.localSource != null";
      example = true;
      description = ''
        Whether the Linux Vendor Firmware Service remote (`lvfs`, metadata from the Internet)
        is switched off. By default it is when a local source is given, so that the machine
        only installs the firmware the configuration ships.
      '';
    };

    extraConfig = mkOption {
      type = types.lines;
      default = "";
      example = ''
        DisabledPlugins=test;test_ble
        OnlyTrusted=true
      '';
      description = ''
        Lines of the `[fwupd]` section of /etc/fwupd/fwupd.conf (see fwupd.conf(5)). The file
        is generated (a link into /usr, so `fwupdmgr modify-config` cannot change it).
      '';
    };

    automaticUpdates = {
      enable = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Whether firmware updates are installed automatically, in the maintenance window of
          the updates module ({option}`updates.maintenanceWindow`): a timer starts
          `sonix-firmware-update.service` when the window opens, which refreshes the metadata,
          installs every update (`fwupdmgr update`), and, when a device needs a reboot to
          finish, asks `sonix update reboot-if-allowed --reason firmware`, which reboots as
          {option}`updates.strategy` allows (immediately, inside the window, or with a
          FleetLock slot; `off` leaves the reboot to the admin). Needs
          {option}`updates.enable`.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !cfg.automaticUpdates.enable || config.updates.enable;
        message = "hardware.fwupd.automaticUpdates.enable needs updates.enable: firmware updates run in updates.maintenanceWindow and reboot by updates.strategy. Enable updates, or leave hardware.fwupd.automaticUpdates.enable off and run `fwupdmgr update` by hand.";
      }
      {
        assertion = cfg.localSource == null || lib.hasPrefix "/" (toString cfg.localSource);
        message = "hardware.fwupd.localSource must be an absolute path.";
      }
    ];

    environment.packages = [ pkgs.fwupd ]
      ++ optional (cfg.automaticUpdates.enable && window.timeZone != "UTC") pkgs.tzdata;

    environment.etc = {
      # The comment goes under the group: fwupd 2 refuses a file whose first lines are a
      # comment before any group ("failed to set comment ... for [fwupd]").
      "fwupd/fwupd.conf".text = ''
        [fwupd]
        # Generated by sonix from hardware.fwupd (fwupd.conf(5)).
      '' + cfg.extraConfig;
    } // optionalAttrs (cfg.localSource != null) {
      "fwupd/remotes.d/sonix-local.conf".text = ''
        # Generated by sonix from hardware.fwupd.localSource: a directory of .cab files.
        [fwupd Remote]
        Enabled=true
        Title=Local firmware (hardware.fwupd.localSource)
        MetadataURI=file://${localDir}
        ApprovalRequired=false
      '';
    } // optionalAttrs cfg.disableLvfs {
      # The package's file (copied into /etc once) with Enabled=false; owning the path makes it
      # a link that follows the configuration.
      "fwupd/remotes.d/lvfs.conf".text = ''
        # Generated by sonix: hardware.fwupd.disableLvfs = true.
        [fwupd Remote]
        Enabled=false
        Title=Linux Vendor Firmware Service
        MetadataURI=https://cdn.fwupd.org/downloads/firmware.xml.zst
        ReportURI=https://fwupd.org/lvfs/firmware/report
        PrivacyURI=https://lvfs.readthedocs.io/en/latest/privacy.html
        FirmwareBaseURI=https://fwupd.org/downloads
        AutomaticReports=false
        AutomaticSecurityReports=false
        ApprovalRequired=false
      '';
    };

    # What tpm-udev's postinst (fwupd's TPM library brings it) does with adduser: the `tss`
    # account that its udev rules give the TPM device nodes to.
    users.users.tss = {
      isSystemUser = true;
      description = "TPM software stack";
      home = "/var/lib/tpm";
      shell = "/bin/false";
    };

    system.usrFiles = optionalAttrs shipped {
      "share/sonix/fwupd/local".source = cfg.localSource;
    };

    # The packaged fwupd-refresh.timer (hourly, as the fwupd-refresh user) is not enabled:
    # metadata is refreshed by the update job below, in the window.
    systemd.services.sonix-firmware-update = mkIf cfg.automaticUpdates.enable {
      description = "Install firmware updates (fwupd) and reboot as updates.strategy allows";
      documentation = [ "man:fwupdmgr(1)" ];
      after = [ "network-online.target" "sonix-update-assess.service" ];
      wants = [ "network-online.target" ];
      serviceConfig = {
        Type = "oneshot";
        # Flashing may take long; a firmware write must never be killed halfway.
        TimeoutStartSec = "infinity";
      };
      script = updateScript;
    };
    systemd.timers.sonix-firmware-update = mkIf cfg.automaticUpdates.enable {
      description = "Firmware updates when the maintenance window opens";
      timerConfig = {
        OnCalendar = windowCalendar;
        Unit = "sonix-firmware-update.service";
      };
    };
    systemd.targets.timers.wants = optional cfg.automaticUpdates.enable "sonix-firmware-update.timer";
  };
}
