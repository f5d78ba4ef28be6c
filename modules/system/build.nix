# The build results of a configuration (system.build.*): Nix derivations that run the image
# builder (src/sonix/in_nix_build/image.py) inside the locked tools tree. Configuration goes in
# through system.buildManifest and a few options (docs/architecture.md); nothing else is read.
{ config, lib, pkgs, ... }:
let
  inherit (config.image) name version;

  # The builder alone (not its folder), so that changing another in-build script does not
  # rebuild images.
  imageBuilder = builtins.path { name = "image.py"; path = ../../src/sonix/in_nix_build/image.py; };

  # Debian names of package values: pkgs.<name> carries its name in `debianName`; older
  # package sets are matched through the lock.
  storeNames = lib.listToAttrs (map (n: { name = pkgs.${n}.name; value = n; })
    (builtins.attrNames pkgs.lock.packages));
  debianName = p:
    p.debianName or storeNames.${p.name} or (throw "environment.packages: `${p.name or "?"}' is not a package of the locked Debian set (pkgs).");

  packageNames = lib.unique (map debianName (config.environment.packages
    ++ lib.optional (!config.boot.isContainer) config.boot.kernel.package));

  base = pkgs.usrTree { packages = packageNames; name = "${name}-packages"; };

  # Fixed inputs of every step; each step is one derivation, so changing a unit rebuilds the
  # usr tree and the image but not the package tree, and changing the initrd's modules
  # rebuilds the initrd but not /usr.
  step = stepName: attrs: script: derivation ({
    name = "${name}-${stepName}-${version}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    inherit imageBuilder;
    runInTools = pkgs.runInTools;
    args = [ "-c" "mkdir -p \"$out\" && ${script}" ];
  } // attrs);

  osRelease = ''
    NAME="sonix"
    PRETTY_NAME="sonix ${version} (Debian 13 based)"
    ID=sonix
    ID_LIKE=debian
    VERSION="${version}"
    VERSION_ID="${version}"
    IMAGE_ID=${name}
    IMAGE_VERSION=${version}
    HOME_URL="https://example.invalid/sonix"
  '';
  # The initrd's os-release names no version: two releases with the same packages and initrd
  # options then share one initrd (no rebuild when only the version changes), and an update
  # agent sees from equal kernel and initrd digests that a soft-reboot can activate a release.
  initrdRelease = ''
    NAME="sonix"
    PRETTY_NAME="sonix (Debian 13 based)"
    ID=sonix
    ID_LIKE=debian
    IMAGE_ID=${name}
    HOME_URL="https://example.invalid/sonix"
  '';

  # Always in the initrd: what finds, verifies and mounts /usr, and creates the root on a
  # virtio disk (probe notes §15). Built-in ones (ext4, virtio_pci, ...) are skipped. Stage 1
  # never mounts the ESP and the root is not volatile, so vfat and overlay stay in /usr.
  baseInitrdModules = [
    "virtio_blk" "virtio_scsi" "sd_mod" "erofs" "dm_mod" "dm_verity" "loop" "efivarfs"
    "autofs4" "virtio_rng" "qemu_fw_cfg"
  ];

  usr = step "usr" {
    inherit base;
    manifest = builtins.toJSON config.system.buildManifest;
    inherit osRelease;
    passAsFile = [ "manifest" "osRelease" ];
  } ''"$runInTools" python3 "$imageBuilder" usr --base "$base" --manifest "$manifestPath" --os-release "$osReleasePath" --out "$out"'';

  # The initrd is made from the package tree and its own files only, so that changing the
  # configuration of the booted system (units, /etc, users) does not rebuild it.
  initrd = step "initrd" {
    name = "${name}-initrd";  # no version: see initrdRelease
    inherit base;
    osRelease = initrdRelease;
    manifest = builtins.toJSON { inherit (config.system.buildManifest) initrdUsrFiles; };
    passAsFile = [ "manifest" "osRelease" ];
    modules = lib.concatStringsSep "," (lib.unique (baseInitrdModules
      ++ config.boot.initrd.availableKernelModules ++ config.boot.initrd.kernelModules));
    binaries = lib.concatStringsSep "," config.boot.initrd.binaries;
    inherit (config.boot.initrd) compressor;
    network = lib.optionalString config.boot.initrd.network.enable "--network";
  } ''"$runInTools" python3 "$imageBuilder" initrd --usr "$base" --base "$base" --manifest "$manifestPath" --os-release "$osReleasePath" --modules "$modules" --binaries "$binaries" --compressor "$compressor" $network --out "$out"'';

  diskConfig = {
    inherit name version;
    inherit (config.image) espSize usrSlotSize usrVeritySlotSize compression;
    # The root is writable state by design (systemd-repart creates it on first boot and the
    # initrd must create /sysroot/usr in it), so `rw` is not a choice the configuration makes.
    kernelParams = [ "rw" ] ++ config.boot.kernelParams ++ config.image.extraCmdline;
    inherit (config.boot.kernel) disabledLsms;
    inherit (config.boot.loader) timeout tries;
    stubDir = "/usr/lib/systemd/boot/efi";
  };

  # boot.secureBoot (modules/system/secure-boot.nix): the build reads the private keys from the
  # host (sandbox off, group nixbld), so their directories are made visible in the tools tree;
  # the certificate and the public PCR key are in the JSON, so a new key rebuilds.
  secureBoot = config.boot.secureBoot.signing;
  keyDirectories = lib.optionals (secureBoot != null)
    (lib.unique (map dirOf [ secureBoot.signingKey secureBoot.pcrPrivateKey ]));

  image = step "image" ({
    inherit usr;
    initrd = "${initrd}/initrd.img";
    config = builtins.toJSON diskConfig;
    passAsFile = [ "config" ];
  } // lib.optionalAttrs (secureBoot != null) {
    secureBoot = builtins.toJSON secureBoot;
    passAsFile = [ "config" "secureBoot" ];
  }) (''"$runInTools" ${lib.concatMapStrings (d: "--ro ${lib.escapeShellArg d} ") keyDirectories}''
    + ''python3 "$imageBuilder" disk --usr "$usr" --initrd "$initrd" --config "$configPath" --out "$out"''
    + lib.optionalString (secureBoot != null) " --secure-boot \"$secureBootPath\"");

  # `nix-build -A config.system.build.runvm` → a script that boots a copy of the image.
  runvm = derivation {
    name = "${name}-runvm-${version}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    inherit image;
    imageFile = "${image}/disk.raw";
    script = builtins.readFile ./runvm.sh;
    passAsFile = [ "script" ];
    args = [ "-c" ''sed "s|@image@|$imageFile|g; s|@name@|${name}|g" "$scriptPath" > "$out" && chmod 555 "$out"'' ];
  };

  toplevel = lib.checkAssertWarn config (derivation {
    name = "${name}-system-${version}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    inherit usr initrd image runvm;
    args = [ "-c" ''
      mkdir -p "$out" && ln -s "$usr" "$out/usr" && ln -s "$initrd" "$out/initrd" &&
      ln -s "$image" "$out/image" && ln -s "$runvm" "$out/runvm"
    '' ];
  });
in
{
  config.system.build = {
    inherit base usr initrd image runvm toplevel;
    uki = "${image}/${name}_${version}.efi";
  };
}
