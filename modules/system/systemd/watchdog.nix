# The hardware watchdog: PID 1 opens it and pings it (system.conf's RuntimeWatchdogSec=), so a
# machine whose kernel or PID 1 hangs is reset by the hardware, and systemd-boot's boot counting
# moves on. The same settings go into the initrd's system.conf and its driver is loaded at the
# start of stage 1, so a hang there is caught too (PID 1 keeps the device open across
# switch-root and the system's PID 1 takes it over). A PID 1 that crashes reboots the machine
# (systemd.crashAction) instead of freezing: a frozen PID 1 was not reset by the watchdog in the
# VM tests (docs/updates.md).
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.systemd.watchdog;
  timeSpan = types.nullOr (types.strMatching "[0-9]+(ms|s|min|h)?|off|default");
  settings = lib.filterAttrs (_: v: v != null) {
    RuntimeWatchdogSec = cfg.runtimeTime;
    RebootWatchdogSec = cfg.rebootTime;
    KExecWatchdogSec = cfg.kexecTime;
    WatchdogDevice = cfg.device;
    CrashAction = config.systemd.crashAction;
  };
  dropin = {
    text = "# sonix: systemd.watchdog.*, systemd.crashAction\n[Manager]\n"
      + lib.concatStrings (lib.mapAttrsToList (k: v: "${k}=${v}\n") settings);
  };
in
{
  options.systemd.crashAction = mkOption {
    type = types.nullOr (types.enum [ "freeze" "reboot" "poweroff" ]);
    default = "reboot";
    example = "freeze";
    description = ''
      `CrashAction=` of PID 1, in the system and in the initrd: what happens when PID 1 itself
      crashes. systemd's default, `freeze`, keeps the machine up for a debugger at the console;
      a server has nobody there, and a release on trial whose PID 1 crashes must end its boot
      so that boot counting can move on. `reboot` reboots 10 s after the crash (the core is
      dumped first). `null` leaves systemd's default.
    '';
  };

  options.systemd.watchdog = {
    runtimeTime = mkOption {
      type = timeSpan;
      default = "1min";
      example = "30s";
      description = ''
        `RuntimeWatchdogSec=` of PID 1, in the system and in the initrd: the hardware watchdog
        resets the machine when PID 1 has not pinged it for this long (it pings at half the
        interval), so a hung kernel or PID 1 ends the boot, and a release on trial is tried
        again or rolled back without anyone at the console. Without watchdog hardware this
        does nothing (systemd logs that it found none). `null` leaves systemd's default (off).
      '';
    };

    rebootTime = mkOption {
      type = timeSpan;
      default = "10min";
      example = "2min";
      description = ''
        `RebootWatchdogSec=`: the watchdog stays armed during the last phase of a reboot, so a
        reboot that hangs (a driver that never lets go) still ends in a reset. `null` leaves
        systemd's default (10 min).
      '';
    };

    kexecTime = mkOption {
      type = timeSpan;
      default = null;
      example = "5min";
      description = ''
        `KExecWatchdogSec=`: keep the watchdog armed across a kexec (the update agent's
        activation when the kernel or initrd changed). The new kernel must load the driver and
        PID 1 ping it in time, or the machine is reset; `null` disarms it for the kexec
        (systemd's default).
      '';
    };

    device = mkOption {
      type = types.nullOr (types.strMatching "/dev/.+");
      default = null;
      example = "/dev/watchdog1";
      description = "`WatchdogDevice=`: the watchdog device; `null` is `/dev/watchdog0`.";
    };

    drivers = mkOption {
      type = types.listOf (types.strMatching "[A-Za-z0-9_-]+");
      default = [ "i6300esb" ];
      example = [ "i6300esb" "iTCO_wdt" "sp5100_tco" ];
      description = ''
        Watchdog drivers loaded at the start of stage 1 (systemd-modules-load), so that the
        watchdog is armed in the initrd already: PID 1 opens the device as soon as it appears.
        The default is QEMU's `-device i6300esb`; a driver without its hardware loads and does
        nothing. Add the driver of the board's watchdog (`iTCO_wdt`, `sp5100_tco`, ...) for
        bare metal.
      '';
    };
  };

  config = lib.mkIf (!config.boot.isContainer) (lib.mkMerge [
    (lib.mkIf (settings != { }) {
      system.usrFiles."lib/systemd/system.conf.d/50-sonix-watchdog.conf" = dropin;
      boot.initrd.usrFiles."lib/systemd/system.conf.d/50-sonix-watchdog.conf" = dropin;
    })
    # Loaded at the start of stage 1, as boot.initrd.diskDrivers are (boot.nix).
    (lib.mkIf (cfg.drivers != [ ]) {
      boot.initrd.usrFiles."lib/modules-load.d/sonix-watchdog.conf".text = lib.concatLines cfg.drivers;
      boot.initrd.availableKernelModules = cfg.drivers;
    })
  ]);
}
