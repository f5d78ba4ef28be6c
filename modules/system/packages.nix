# The Debian packages that form the image's /usr. Modules add the packages they need; the
# builder merges the dependency closure of this list (pkgs/ resolves it from the lock file).
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.environment.packages = mkOption {
    type = types.listOf types.package;
    default = [ ];
    example = lib.literalExpression "[ pkgs.curl pkgs.htop ]";
    description = ''
      Debian packages (from `pkgs`) installed in the image's `/usr`, with their dependencies.
      Definitions add up: the core modules contribute the minimal server system (the `system`
      set of `pkgs/packages.toml`), service modules their daemons. Packaged units are not
      enabled by installing them: see `systemd.targets.<name>.wants`.
    '';
  };

  # The minimal server system that every image contains (`[sets.system]` in pkgs/packages.toml):
  # a definition, not the option's default, so that the configuration's packages add to it.
  # The kernel comes from boot.kernel.package (modules/system/boot.nix) instead, so that
  # choosing another one does not install both.
  # A container (boot.isContainer) shares the host's kernel and boots without firmware,
  # partitions or dm-verity of its own: it gets the rest.
  config.environment.packages =
    let
      bootOnly = [ "systemd-boot" "systemd-boot-efi" "systemd-repart" "systemd-cryptsetup" "dmsetup" "e2fsprogs" ];
      wanted = name: !lib.hasPrefix "linux-image-" name
        && !(config.boot.isContainer && lib.elem name bootOnly);
    in
    map (name: pkgs.${name}) (lib.filter wanted pkgs.sets.system);
}
