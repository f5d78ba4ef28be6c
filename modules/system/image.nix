# The disk image: names, version and partition sizes. The layout (DESIGN.md, layer 4):
#
#   ESP (systemd-boot, UKIs named with a boot counter) | usr-A (erofs) | usr-A-verity
#
# and on first boot systemd-repart adds the empty usr-B slot (for updates) and the root.
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  size = types.strMatching "[0-9]+[KMG]?";
in
{
  options.image = {
    name = mkOption {
      type = types.strMatching "[a-z0-9][a-z0-9_-]*";
      default = "sonix";
      description = ''
        The image name: the OS `IMAGE_ID`, the prefix of the UKI file names
        (`<name>_<version>.efi`) and of the usr partition labels.
      '';
    };
    version = mkOption {
      type = types.strMatching "[0-9A-Za-z.~^+-]+";
      default = "1";
      example = "2026.11.24.1";
      description = ''
        The release version (`IMAGE_VERSION`). Updates compare versions, so each release of a
        channel needs a newer one.
      '';
    };
    espSize = mkOption {
      type = size;
      default = "256M";
      description = "Size of the EFI system partition; it holds two or three UKIs during updates.";
    };
    usrSlotSize = mkOption {
      type = size;
      default = "512M";
      description = ''
        Size of each usr slot (A and B). The usr image of a release must fit; the build fails
        with the sizes when it does not.
      '';
    };
    usrVeritySlotSize = mkOption {
      type = size;
      default = "8M";
      description = "Size of each usr verity (hash tree) slot.";
    };
    compression = mkOption {
      type = types.enum [ "none" "lz4" "lzma" ];
      default = "lz4";
      description = ''
        erofs compression of the usr image: `lz4` is fast to read, `lzma` smallest,
        `none` makes the image byte-searchable (useful for corruption tests).
      '';
    };
    extraCmdline = mkOption {
      type = types.listOf types.str;
      default = [ ];
      internal = true;
      description = "Kernel command line words that image-level modules add (tests).";
    };
  };

  # First boot: systemd-repart (in the initrd) adds the empty B slot that updates write to,
  # before the root takes the rest of the disk. repart matches existing partitions to
  # definitions of the same type in order, so the shipped A slot needs definitions too.
  config.systemd.repart.partitions = let cfg = config.image; in {
    "10-usr-a" = { Type = "usr"; SizeMinBytes = cfg.usrSlotSize; SizeMaxBytes = cfg.usrSlotSize; };
    "11-usr-a-verity" = { Type = "usr-verity"; SizeMinBytes = cfg.usrVeritySlotSize; SizeMaxBytes = cfg.usrVeritySlotSize; };
    "20-usr-b" = { Type = "usr"; Label = "_empty"; SizeMinBytes = cfg.usrSlotSize; SizeMaxBytes = cfg.usrSlotSize; };
    "21-usr-b-verity" = { Type = "usr-verity"; Label = "_empty"; SizeMinBytes = cfg.usrVeritySlotSize; SizeMaxBytes = cfg.usrVeritySlotSize; };
  };
}
