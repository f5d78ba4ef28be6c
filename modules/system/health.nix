# Boot assessment: health checks that boot-complete.target requires. systemd-bless-boot marks
# the boot entry good only after boot-complete.target, so a release whose checks fail keeps
# using up its tries (boot.loader.tries) and systemd-boot falls back to the previous release.
{ lib, config, ... }:
let
  inherit (lib) mkOption types mapAttrs' nameValuePair attrNames optional;
  cfg = config.health;
  unitName = name: "sonix-health-${name}";
  timeLimit = types.nullOr (types.strMatching "[1-9][0-9]*(ms|s|min|h)?");
  # Whether systemd-boot counts this boot. It sets LoaderBootCountPath when it starts an entry
  # with a counter and never removes it: when the firmware refused that entry (Secure Boot) and
  # a later start of systemd-boot, from the next firmware boot option, booted an entry without
  # a counter, the variable still names the refused entry. This boot is counted only when it
  # names the entry that booted, LoaderEntrySelected: its id is its file name without the
  # counter. The variables are UTF-16 after 4 attribute bytes; tr drops both.
  countedBoot = ''
    counted_boot() {
      vars=''${SONIX_GENERATOR_ROOT:-}/sys/firmware/efi/efivars
      count=$vars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
      [ -e "$count" ] || return 1
      path=$(tr -d '\000-\037' < "$count" 2>/dev/null || true)
      selected=$(tr -d '\000-\037' < "$vars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f" 2>/dev/null || true)
      name=''${path##*\\}
      id="''${name%%+*}.''${name##*.}"
      [ "$(echo "$id" | tr A-Z a-z)" = "$(echo "$selected" | tr A-Z a-z)" ]
    }
  '';
  # Where a failed check leaves its name for the update agent (`sonix status` shows it after
  # the rollback): /var/lib/sonix/health/failed-<IMAGE_VERSION>.
  failedScript = ''
    ${countedBoot}
    . /usr/lib/os-release
    mkdir -p /var/lib/sonix/health
    printf '%s\n' "$1" > "/var/lib/sonix/health/failed-$IMAGE_VERSION"
    echo "<3>health check $1 failed on $IMAGE_ID $IMAGE_VERSION" >&2
    # On trial: systemd-boot counts this boot, or the update agent activated the release
    # without the firmware (soft-reboot, kexec; /var/lib/sonix-update/trial names it).
    trial=$(cat /var/lib/sonix-update/trial 2>/dev/null || true)
    if counted_boot || [ "$trial" = "$IMAGE_VERSION" ]; then
      echo "<3>this release is on trial (boot counting): rebooting so the next try, or the previous release, boots" >&2
      ${if cfg.rebootOnFailure then "systemctl --no-block reboot" else "true"}
    fi
  '';
  # A trial boot must end on its own, also when it hangs before any health check runs. A
  # generator decides at every start of PID 1 (initrd, system, soft-reboot) whether the boot is
  # on trial, as failedScript does, and only then arms the limits: a machine that is not on
  # trial keeps systemd's behaviour (an emergency shell waits for the admin). The limits are
  # job timeouts and a timer, all handled by PID 1 itself, so they need no program of their own
  # in the initrd. SONIX_GENERATOR_ROOT lets the unit tests run it against a fake tree.
  trialLimits = !config.boot.isContainer
    && (cfg.bootTimeLimit != null || cfg.emergencyTimeLimit != null);
  trialGenerator = ''
    #!/usr/bin/sh
    # sonix: arms the limits of a trial boot (health.bootTimeLimit, health.emergencyTimeLimit).
    set -eu
    out=$1
    root=''${SONIX_GENERATOR_ROOT:-}
    boot_limit=${toString cfg.bootTimeLimit}
    emergency_limit=${toString cfg.emergencyTimeLimit}
    trial=
    efivar=$root/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
    ${countedBoot}
    if counted_boot; then
      trial="boot counting"
      # The entry's new name, counter already bumped for this boot (UTF-16: drop the NULs):
      # `+0-3` with 3 tries is the last try, `+0-4` means systemd-boot booted an entry with no
      # tries left because it had nothing better. Rebooting that would only loop, so the
      # admin keeps the emergency shell.
      counter=$(tr -d '\000' < "$efivar" 2>/dev/null || true)
      counter=''${counter##*+}
      case $counter in
        0-*)
          tries_done=''${counter#0-}
          tries_done=''${tries_done%%.*}
          case $tries_done in
            *[!0-9]*|"") ;;
            *) [ "$tries_done" -le ${toString config.boot.loader.tries} ] || trial= ;;
          esac
          ;;
      esac
    elif [ ! -e "$root/etc/initrd-release" ] && [ -r "$root/var/lib/sonix-update/trial" ]; then
      version=$(. "$root/usr/lib/os-release" && echo "''${IMAGE_VERSION:-}")
      if [ -n "$version" ] && [ "$(cat "$root/var/lib/sonix-update/trial")" = "$version" ]; then
        trial="activated by the update agent"
      fi
    fi
    [ -n "$trial" ] || exit 0
    # The boot menu can change them for one boot (0 turns a limit off), e.g. to debug a release:
    # digits with an optional unit, as the options take; a typo keeps the configured limit.
    checked() {
      case $1 in
        0|off) echo off ;;
        *[!0-9a-z]*|"") ;;
        [1-9]*) case ''${1#"''${1%%[!0-9]*}"} in ""|ms|s|min|h) echo "$1" ;; esac ;;
      esac
    }
    for word in $(cat "$root/proc/cmdline" 2>/dev/null || true); do
      case $word in
        sonix.boot_time_limit=*) value=$(checked "''${word#*=}"); boot_limit=''${value:-$boot_limit} ;;
        sonix.emergency_time_limit=*) value=$(checked "''${word#*=}"); emergency_limit=''${value:-$emergency_limit} ;;
      esac
    done
    case $boot_limit in 0|off) boot_limit= ;; esac
    case $emergency_limit in 0|off) emergency_limit= ;; esac

    # The target whose job must finish in time: stage 1 until switch-root, then the boot's
    # assessment. The job is queued when PID 1 starts; reboot-force does not wait for units
    # that hang, and systemd.watchdog.rebootTime covers the reboot itself.
    if [ -e "$root/etc/initrd-release" ]; then
      target=initrd.target
    else
      target=boot-complete.target
      # Also when nothing else pulls it in (no health checks), so that its job runs out.
      mkdir -p "$out/default.target.wants"
      ln -sf /usr/lib/systemd/system/boot-complete.target "$out/default.target.wants/boot-complete.target"
    fi
    if [ -n "$boot_limit" ]; then
      mkdir -p "$out/$target.d"
      cat > "$out/$target.d/50-sonix-trial.conf" <<EOF
    # sonix-trial-generator: this boot is on trial ($trial)
    [Unit]
    JobTimeoutSec=$boot_limit
    JobTimeoutAction=reboot-force
    EOF
    fi
    if [ -n "$emergency_limit" ]; then
      cat > "$out/sonix-trial-reboot.timer" <<EOF
    # sonix-trial-generator: this boot is on trial ($trial)
    [Unit]
    Description=Reboot a trial boot left in emergency or rescue mode
    DefaultDependencies=no

    [Timer]
    OnActiveSec=$emergency_limit
    AccuracySec=1s
    EOF
      cat > "$out/sonix-trial-reboot.service" <<EOF
    # sonix-trial-generator: this boot is on trial ($trial)
    [Unit]
    Description=Reboot a trial boot left in emergency or rescue mode
    DefaultDependencies=no
    SuccessAction=reboot-force
    FailureAction=reboot-force

    [Service]
    Type=oneshot
    StandardOutput=journal+console
    ExecStart=/usr/bin/sh -c "echo 'sonix: this boot is on trial ($trial) and was in emergency or rescue mode for $emergency_limit: rebooting, so that the next try or the previous release boots'"
    EOF
      for mode in emergency rescue; do
        mkdir -p "$out/$mode.target.wants"
        ln -sf ../sonix-trial-reboot.timer "$out/$mode.target.wants/sonix-trial-reboot.timer"
      done
    fi
  '';
in
{
  options.health = {
    checks = mkOption {
      default = { };
      example = lib.literalExpression ''
        {
          web = { command = "curl -fsS http://127.0.0.1/healthz"; };
          database = { unit = "postgresql.service"; };
        }
      '';
      description = ''
        Health checks that decide whether a boot is good. Each becomes a oneshot service
        `sonix-health-<name>.service` that `boot-complete.target` requires: the boot entry is
        blessed (systemd-bless-boot) only when all of them succeed. On a release that is still
        on trial, a failed check reboots the machine (see {option}`health.rebootOnFailure`);
        after {option}`boot.loader.tries` failed boots systemd-boot starts the previous
        release, and the update agent records the failure and never installs that release
        again.
      '';
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          command = mkOption {
            type = types.nullOr types.lines;
            default = null;
            example = "test -S /run/app.sock";
            description = "Shell commands (bash, `set -e`) that succeed when the machine is healthy.";
          };
          unit = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "nginx.service";
            description = ''
              A unit that must have started successfully: the check starts it (`wants`), waits
              for it (`after`) and fails when it is not active (or, for a oneshot unit, did not
              succeed).
            '';
          };
          timeout = mkOption {
            type = types.str;
            default = "5min";
            example = "90s";
            description = "How long the check may take (`TimeoutStartSec=`); a check that runs longer failed.";
          };
          description = mkOption {
            type = types.str;
            default = "Health check ${name}";
            defaultText = lib.literalExpression ''"Health check ''${name}"'';
            description = "The check unit's description (shown in the journal and `systemctl status`).";
          };
        };
      }));
    };

    rebootOnFailure = mkOption {
      type = types.bool;
      default = true;
      example = false;
      description = ''
        Reboot when a health check fails while the booted release is on trial (its boot entry
        still has a boot counter), so that boot counting moves on to the next try and finally
        to the previous release without anyone at the console. A failed check on a release
        that is already blessed never reboots: it is logged (and `systemctl --failed` shows it).
      '';
    };

    bootTimeLimit = mkOption {
      type = timeLimit;
      default = "15min";
      example = "5min";
      description = ''
        On a boot that is on trial (as for {option}`health.rebootOnFailure`: systemd-boot
        counts it, or the update agent activated the release by soft-reboot or kexec), the
        longest the initrd may take to reach `initrd.target` and, again, the system to reach
        `boot-complete.target` (every health check passed) from the start of stage 2. A boot
        that runs out is ended by a forced reboot (`JobTimeoutSec=` with
        `JobTimeoutAction=reboot-force` on that target), so a release that hangs (a unit in
        sysinit that never finishes, a device that never appears) uses up its tries and the
        previous release boots without anyone at the console. Not on trial, nothing is
        limited. The default leaves room for a first boot under emulation (TCG); on hardware a
        few minutes do. `null` turns it off; `sonix.boot_time_limit=` on the kernel command
        line (edited in the boot menu) changes it for one boot, `0` there turns it off.
      '';
    };

    emergencyTimeLimit = mkOption {
      type = timeLimit;
      default = "5min";
      example = "30s";
      description = ''
        How long a boot that is on trial may stay in emergency or rescue mode, in the initrd
        (its usr partition never appeared, provisioning failed) or in the system, before it is
        rebooted (`reboot-force`), so that the next try or the previous release boots. Not on
        trial, the emergency shell waits for the admin as before; neither does an entry that
        systemd-boot booted with no tries left (nothing to fall back to: rebooting it would
        only loop, see docs/updates.md). `null` turns it off;
        `sonix.emergency_time_limit=` on the kernel command line changes it for one boot.
      '';
    };

    requireNoFailedUnits = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Also require that no unit has failed when boot-complete.target is reached
        (systemd-boot-check-no-failures.service).
      '';
    };
  };

  config = {
    assertions = lib.mapAttrsToList (name: check: {
      assertion = (check.command == null) != (check.unit == null);
      message = "health.checks.${name}: set exactly one of `command` or `unit`.";
    }) cfg.checks;

    systemd.services = mapAttrs' (name: check: nameValuePair (unitName name) ({
      inherit (check) description;
      before = [ "boot-complete.target" ];
      after = optional (check.unit != null) check.unit;
      wants = optional (check.unit != null) check.unit;
      onFailure = [ "sonix-health-failed@%n.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        TimeoutStartSec = check.timeout;
      };
    } // (if check.command != null then { script = check.command; } else {
      script = ''
        unit=${lib.escapeShellArg check.unit}
        state=$(systemctl show -P ActiveState "$unit")
        result=$(systemctl show -P Result "$unit")
        type=$(systemctl show -P Type "$unit")
        echo "$unit: $state, result $result"
        [ "$result" = success ] || exit 1
        case "$state" in
          active|reloading) ;;
          inactive) [ "$type" = oneshot ] ;;  # a oneshot that ran and succeeded
          *) exit 1 ;;
        esac
      '';
    }))) cfg.checks // lib.optionalAttrs (cfg.checks != { }) {
      "sonix-health-failed@" = {
        description = "Record the failed health check %i";
        serviceConfig = {
          Type = "oneshot";
          ExecStart = "/usr/lib/sonix/health-failed %i";
        };
      };
    } // lib.optionalAttrs (!config.boot.isContainer) {
      # systemd-bless-boot blesses what LoaderBootCountPath names: not an entry the firmware
      # refused before another one booted (countedBoot above).
      systemd-bless-boot = {
        overrideStrategy = "asDropin";
        serviceConfig.ExecCondition = "/usr/lib/sonix/counted-boot";
      };
    };

    system.usrFiles = lib.optionalAttrs trialLimits {
      "lib/systemd/system-generators/sonix-trial-generator" = { text = trialGenerator; mode = "0755"; };
    } // lib.optionalAttrs (!config.boot.isContainer) {
      "lib/sonix/counted-boot" = {
        text = "#!/usr/bin/sh\n# Exit 0 when systemd-boot counts this boot (modules/system/health.nix).\n${countedBoot}\ncounted_boot\n";
        mode = "0755";
      };
    } // lib.optionalAttrs (cfg.checks != { }) {
      "lib/sonix/health-failed" = {
        text = "#!/usr/bin/bash\n" + failedScript;
        mode = "0755";
      };
    };

    # systemd-bless-boot blesses what LoaderBootCountPath names: not an entry the firmware
    # refused before another one booted (countedBoot above).

    boot.initrd.usrFiles = lib.optionalAttrs trialLimits {
      "lib/systemd/system-generators/sonix-trial-generator" = { text = trialGenerator; mode = "0755"; };
    };
    # The generator's tools that the initrd's base set lacks (sh and cat are in it).
    boot.initrd.binaries = lib.optionals trialLimits [ "/usr/bin/mkdir" "/usr/bin/ln" "/usr/bin/tr" ];

    systemd.targets.boot-complete.requires =
      map (name: "${unitName name}.service") (attrNames cfg.checks)
      ++ optional cfg.requireNoFailedUnits "systemd-boot-check-no-failures.service";
  };
}
