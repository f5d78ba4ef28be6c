# First-boot partitioning: systemd-repart in the initrd creates (and on later boots grows) the
# root partition next to the usr partitions of the shipped image, then the same boot mounts it
# (gpt-auto-root). The definitions live in the initrd, so that the usr image carries no
# first-boot policy.
{ lib, config, ... }:
let
  inherit (lib) mkOption types mkIf mkDefault;
  sd = import ./systemd/lib.nix { inherit lib; };
  cfg = config.systemd.repart;
  mkfsBinaries = {
    # e2fsck too: systemd-fsck-root checks the new root in the initrd.
    ext4 = [ "/usr/sbin/mke2fs" "/usr/sbin/mkfs.ext4" "/usr/sbin/e2fsck" "/usr/sbin/fsck.ext4" ];
    swap = [ "/usr/sbin/mkswap" ];
    vfat = [ "/usr/sbin/mkfs.vfat" ];            # dosfstools
    xfs = [ "/usr/sbin/mkfs.xfs" ];              # xfsprogs
    btrfs = [ "/usr/bin/mkfs.btrfs" ];           # btrfs-progs
  };
  formats = lib.unique (lib.filter (f: f != null) (map (p: p.Format or null) (lib.attrValues cfg.partitions)));
in
{
  options.systemd.repart = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether systemd-repart runs in the initrd on every boot with the definitions of
        {option}`systemd.repart.partitions` (it only acts when something is missing or can grow).
        Without it, nothing creates the root partition: the image must bring one.
      '';
    };
    partitions = mkOption {
      type = types.attrsOf (types.attrsOf sd.unitValue);
      default = { };
      example = lib.literalExpression ''
        {
          "50-root".SizeMinBytes = "2G";
          "60-swap" = { Type = "swap"; Format = "swap"; SizeMinBytes = "1G"; SizeMaxBytes = "1G"; };
          "70-srv" = { Type = "srv"; Format = "xfs"; SizeMinBytes = "10G"; };
        }
      '';
      description = ''
        repart.d definitions (the `[Partition]` section, see repart.d(5)), by file name without
        `.conf`; files are applied in name order. The default `"50-root"` creates the root
        partition (`Type = "root"`, `Format = "ext4"`, at least 256 MiB) and, having no
        `SizeMaxBytes`, grows it into the free space of the disk. The disk must have at least
        `SizeMinBytes` free after the shipped partitions, or the boot stops in emergency mode.
        The `mkfs` of each `Format` (ext4, swap, vfat, xfs, btrfs) goes into the initrd; its
        package must be in {option}`environment.packages` (ext4 and swap are in the base system).
      '';
    };
  };

  config = mkIf cfg.enable {
    systemd.repart.partitions."50-root" = {
      Type = mkDefault "root";
      Format = mkDefault "ext4";
      SizeMinBytes = mkDefault "256M";
    };

    boot.initrd.usrFiles = lib.mapAttrs' (name: p:
      lib.nameValuePair "lib/repart.d/${name}.conf" { text = sd.renderSection "Partition" p; }) cfg.partitions;

    # In the initrd repart reads its definitions below --root (the usr partition, /sysusr) unless
    # told where they are; --definitions= is not prefixed with the root.
    boot.initrd.systemd.services.systemd-repart = {
      overrideStrategy = "asDropin";
      serviceConfig.ExecStart = [ "" "systemd-repart --dry-run=no --definitions=/usr/lib/repart.d" ];
    };

    # repart runs mkfs.<Format> for new partitions; the packages must be in /usr (the builder
    # stops with "initrd binaries not in the usr tree" otherwise).
    boot.initrd.binaries = [ "/usr/bin/systemd-repart" ]
      ++ lib.concatMap (f: mkfsBinaries.${f} or [ ]) formats;
    # repart formats through a loop device over the new partition.
    boot.initrd.availableKernelModules = [ "loop" ];
  };
}
