# The kernel, its command line, the systemd stage-1 initrd's extra contents and the boot loader
# (systemd-boot with boot counting). The image builder reads these options directly.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types optional;
  cfg = config.boot;
  moduleName = types.strMatching "[A-Za-z0-9_-]+";
  modprobeWhenMissing = {
    overrideStrategy = "asDropin";
    unitConfig.ConditionPathExists = "!/sys/module/%i";
  };
in
{
  options.boot = {
    isContainer = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Whether this configuration is the content of a systemd-nspawn machine
        ({option}`containers.<name>.config` sets it): no kernel, no boot loader and no
        partitioning tools are installed, only /usr is built, and the host's nspawn boots it.
      '';
    };

    kernel.package = mkOption {
      type = types.package;
      default = pkgs.linux-image-cloud-amd64;
      defaultText = lib.literalExpression "pkgs.linux-image-cloud-amd64";
      example = lib.literalExpression "pkgs.linux-image-amd64";
      description = ''
        The Debian kernel package. The default cloud kernel has virtio, ext4 and the EFI stub
        built in and is about a third of the size of the generic one; it lacks most drivers for
        physical hardware, for which `pkgs.linux-image-amd64` is the choice.
      '';
    };

    kernel.consoles = mkOption {
      type = types.listOf types.str;
      default = [ "ttyS0,115200" ];
      example = [ "tty0" "ttyS0,115200" ];
      description = ''
        Kernel consoles, each a `console=` parameter; the last one is `/dev/console`. A serial
        console also gets a login prompt (systemd-getty-generator).
      '';
    };

    kernel.panicTimeout = mkOption {
      type = types.ints.unsigned;
      default = 5;
      example = 0;
      description = ''
        Seconds after a kernel panic until the machine reboots (`panic=`), so that systemd-boot's
        boot counting can move on to the previous release when a new one panics (for example on a
        dm-verity error in a file needed to boot). 0 leaves it out: a panic then hangs forever.
      '';
    };

    kernel.disabledLsms = mkOption {
      type = types.listOf (types.strMatching "[a-z0-9_]+");
      default = [ "bpf" ];
      example = [ ];
      description = ''
        Linux security modules that the kernel's built-in order (`CONFIG_LSM`) starts but this
        system turns off: the builder reads `CONFIG_LSM` from the kernel package and adds
        `lsm=` without these (unless {option}`boot.kernelParams` has its own `lsm=`).

        The default turns off the BPF LSM. Its only user on a sonix server is systemd's
        `RestrictFileSystems=`, which no unit of the base system sets, and while it is on PID 1
        loads and verifies its BPF program at every boot: 12 s of a 2-minute boot under TCG
        emulation (docs/benchmarks.md), a fraction of a second on hardware. A unit of the
        configuration that sets `RestrictFileSystems=` is an error until this is `[ ]`.
      '';
    };

    kernelParams = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "quiet" "rd.systemd.default_device_timeout_sec=30" ];
      description = ''
        The kernel command line, baked into the UKI (the builder adds `usrhash=`). Definitions add
        up; the core adds `console=` ({option}`boot.kernel.consoles`), `panic=`
        ({option}`boot.kernel.panicTimeout`) and `systemd.firstboot=no` (nobody answers
        systemd-firstboot's questions on a server console; the configuration gives the answers).
        Use `lib.mkForce` to replace the whole line.
      '';
    };

    initrd.kernelModules = mkOption {
      type = types.listOf moduleName;
      default = [ ];
      example = [ "dm_verity" ];
      description = ''
        Kernel modules loaded early in stage 1 (by name, as for modprobe), by systemd-modules-load
        from the initrd's `/usr/lib/modules-load.d/sonix-initrd.conf`. The builder copies them
        and their dependencies into the initrd and runs depmod there.
      '';
    };

    kernelModules = mkOption {
      type = types.listOf moduleName;
      default = [ ];
      example = [ "br_netfilter" "wireguard" ];
      description = ''
        Kernel modules loaded at every boot of the system (stage 2) by systemd-modules-load,
        from `/usr/lib/modules-load.d/sonix.conf`.
      '';
    };

    initrd.diskDrivers = mkOption {
      type = types.listOf moduleName;
      default = [ "virtio_blk" "virtio_scsi" ];
      example = [ "virtio_blk" "nvme" "ahci" ];
      description = ''
        Drivers of the disk controllers the image may boot from, loaded by systemd-modules-load
        at the start of stage 1 (`/usr/lib/modules-load.d/sonix-disk.conf` in the initrd).
        Otherwise udev loads them when its coldplug reaches the controller, after a few hundred
        other devices: under emulation the boot disk then appears 10 s later. A driver without
        its hardware loads and does nothing. Add `nvme` or `ahci` for bare metal; `[ ]` leaves
        all of it to udev.
      '';
    };

    initrd.availableKernelModules = mkOption {
      type = types.listOf moduleName;
      default = [ ];
      example = [ "nvme" "ahci" ];
      description = ''
        Kernel modules copied into the initrd (with their dependencies) but only loaded on demand,
        by udev or `modprobe@.service`. The builder's base set covers virtio, dm-verity and erofs.
      '';
    };

    initrd.compressor = mkOption {
      type = types.enum [ "xz" "zstd" ];
      default = "xz";
      example = "zstd";
      description = ''
        How the initrd's cpio archive is compressed. `xz` (with the x86 branch filter) makes the
        smallest initrd, about 12 % below `zstd`; `zstd` unpacks several times faster, which
        saves a second or two of boot under emulation (TCG) and little on real hardware.
      '';
    };

    initrd.binaries = mkOption {
      type = types.listOf (types.strMatching "/usr/.+");
      default = [ ];
      example = [ "/usr/sbin/mkfs.xfs" ];
      description = ''
        Programs (absolute `/usr/...` paths in the image's `/usr`) that the builder copies into the
        initrd with their shared libraries, beyond its base set (systemd, udev, veritysetup).
      '';
    };

    loader.timeout = mkOption {
      type = types.ints.unsigned;
      default = 0;
      example = 5;
      description = ''
        Seconds systemd-boot shows its menu (`timeout` in loader.conf). 0 boots the default entry
        at once; holding a key during start still shows the menu.
      '';
    };

    loader.tries = mkOption {
      type = types.ints.positive;
      default = 3;
      description = ''
        Boot counting: how many times a new release is tried (the UKI is named `<name>+<tries>.efi`)
        before systemd-boot falls back to the previous one. A boot counts as good when
        `boot-complete.target` is reached and systemd-bless-boot removes the counter.
      '';
    };

    loader.bootOptions = mkOption {
      type = types.ints.unsigned;
      default = if config.boot.secureBoot.enable then cfg.loader.tries else 0;
      defaultText = lib.literalExpression "if boot.secureBoot.enable then boot.loader.tries else 0";
      example = 3;
      description = ''
        How many firmware boot options (`Boot####`, named `sonix (1)`, `sonix (2)` and so on) that
        start systemd-boot from this ESP come first in `BootOrder`; `sonix-boot-options.service`
        checks them at every boot and writes NVRAM only when they are missing. When the
        firmware refuses to start a UKI (Secure Boot: a signature that does not verify),
        systemd-boot gives the error back to the firmware, which starts the next boot option and
        after the last one waits at its menu for a key. Each start of systemd-boot uses one try
        of the refused entry, so {option}`boot.loader.tries` options bring the machine back to
        the previous release with nobody at the console (docs/secure-boot.md). 0 leaves the
        firmware's boot options alone.
      '';
    };
  };

  config = {
    boot.kernelParams =
      map (c: "console=${c}") cfg.kernel.consoles
      ++ optional (cfg.kernel.panicTimeout > 0) "panic=${toString cfg.kernel.panicTimeout}"
      ++ [ "systemd.firstboot=no" ];
    assertions = lib.optionals (!cfg.isContainer && lib.elem "bpf" cfg.kernel.disabledLsms)
      (lib.mapAttrsToList (name: _: {
        assertion = false;
        message = "systemd.services.${name}.serviceConfig.RestrictFileSystems needs the kernel's BPF LSM, which boot.kernel.disabledLsms turns off; set `boot.kernel.disabledLsms = [ ];' (or drop RestrictFileSystems).";
      }) (lib.filterAttrs (_: s: s.serviceConfig ? RestrictFileSystems) config.systemd.services));
    # In /usr too: stage 2 loads its modules from /usr/lib/modules.
    environment.packages = optional (!cfg.isContainer) cfg.kernel.package;

    system.usrFiles."lib/modules-load.d/sonix.conf" = lib.mkIf (cfg.kernelModules != [ ]) {
      text = lib.concatLines cfg.kernelModules;
    };
    boot.initrd.usrFiles."lib/modules-load.d/sonix-initrd.conf" = lib.mkIf (cfg.initrd.kernelModules != [ ]) {
      text = lib.concatLines cfg.initrd.kernelModules;
    };
    boot.initrd.usrFiles."lib/modules-load.d/sonix-disk.conf" = lib.mkIf (cfg.initrd.diskDrivers != [ ]) {
      text = lib.concatLines cfg.initrd.diskDrivers;
    };
    boot.initrd.availableKernelModules = cfg.initrd.diskDrivers;

    system.agents = lib.mkIf (!cfg.isContainer && cfg.loader.bootOptions > 0) [ "bootorder" ];
    systemd.targets.multi-user.wants = lib.mkIf (!cfg.isContainer && cfg.loader.bootOptions > 0) [ "sonix-boot-options.service" ];
    systemd.services.sonix-boot-options = lib.mkIf (!cfg.isContainer && cfg.loader.bootOptions > 0) {
      description = "Firmware boot options that start systemd-boot again";
      # Off the boot's critical path: python3 takes seconds of CPU under emulation, and nothing
      # waits for it (no automatic After= from multi-user.target, idle CPU and I/O class).
      after = [ "local-fs.target" "systemd-udev-settle.service" ];
      before = [ "shutdown.target" ];
      conflicts = [ "shutdown.target" ];
      unitConfig = {
        DefaultDependencies = false;
        ConditionPathExists = "/sys/firmware/efi/efivars/LoaderDevicePartUUID-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
      };
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "/usr/bin/python3 -I /usr/lib/sonix/agents/bootorder.py ${toString cfg.loader.bootOptions}";
        TimeoutStartSec = "60s";
        CPUSchedulingPolicy = "idle";
        IOSchedulingClass = "idle";
      };
    };

    # bootctl refreshes the boot loader's random seed on the ESP at every boot. Debian's unit
    # orders that before sysinit.target, so every boot waited for udev to announce the ESP
    # (51 s of a TCG boot's critical chain). The same unit without that ordering: the seed is
    # still refreshed, early, but nothing waits for it. systemd-boot also updates the seed itself
    # before it starts the kernel.
    systemd.services.systemd-boot-random-seed = lib.mkIf (!cfg.isContainer) {
      description = "Update Boot Loader Random Seed";
      documentation = [ "man:systemd-boot-random-seed.service(8)" "man:random(4)" ];
      after = [ "local-fs.target" "systemd-random-seed.service" ];
      before = [ "shutdown.target" ];
      conflicts = [ "shutdown.target" ];
      unitConfig = {
        DefaultDependencies = false;
        ConditionVirtualization = "!container";
        ConditionPathExists = [
          "!/etc/initrd-release"
          "|/sys/firmware/efi/efivars/LoaderFeatures-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
          "|/sys/firmware/efi/efivars/StubFeatures-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
        ];
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "bootctl --graceful random-seed";
      };
    };

    # modprobe@<module>.service runs at every boot for configfs, loop, dm_mod, fuse, drm…, also
    # when the initrd has loaded the module or it is built in (then modprobe has nothing to do,
    # but under TCG starting it costs about a second of CPU each). /sys/module/<name> exists
    # exactly when the module is loaded or built in with parameters, so skip those.
    systemd.services."modprobe@" = modprobeWhenMissing;
    boot.initrd.systemd.services."modprobe@" = modprobeWhenMissing;
  };
}
