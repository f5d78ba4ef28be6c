# Boot assessment: health checks that boot-complete.target requires. systemd-bless-boot marks
# the boot entry good only after boot-complete.target, so a release whose checks fail keeps
# using up its tries (boot.loader.tries) and systemd-boot falls back to the previous release.
{ lib, config, ... }:
let
  inherit (lib) mkOption types mapAttrs' nameValuePair attrNames optional;
  cfg = config.health;
  unitName = name: "sonix-health-${name}";
  # Where a failed check leaves its name for the update agent (`sonix status` shows it after
  # the rollback): /var/lib/sonix/health/failed-<IMAGE_VERSION>.
  failedScript = ''
    . /usr/lib/os-release
    mkdir -p /var/lib/sonix/health
    printf '%s\n' "$1" > "/var/lib/sonix/health/failed-$IMAGE_VERSION"
    echo "<3>health check $1 failed on $IMAGE_ID $IMAGE_VERSION" >&2
    # On trial: systemd-boot counts this boot, or the update agent activated the release
    # without the firmware (soft-reboot, kexec; /var/lib/sonix-update/trial names it).
    trial=$(cat /var/lib/sonix-update/trial 2>/dev/null || true)
    if [ -e /sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f ] || [ "$trial" = "$IMAGE_VERSION" ]; then
      echo "<3>this release is on trial (boot counting): rebooting so the next try, or the previous release, boots" >&2
      ${if cfg.rebootOnFailure then "systemctl --no-block reboot" else "true"}
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
    };

    system.usrFiles = lib.optionalAttrs (cfg.checks != { }) {
      "lib/sonix/health-failed" = {
        text = "#!/usr/bin/bash\n" + failedScript;
        mode = "0755";
      };
    };

    systemd.targets.boot-complete.requires =
      map (name: "${unitName name}.service") (attrNames cfg.checks)
      ++ optional cfg.requireNoFailedUnits "systemd-boot-check-no-failures.service";
  };
}
