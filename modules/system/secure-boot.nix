# Secure Boot with the owner's keys and measured boot (issue 15; docs/secure-boot.md).
#
# The image step (modules/system/build.nix, src/sonix/in_nix_build/image.py) signs systemd-boot
# and the UKI with the db key, embeds a signed PCR 11 policy in the UKI, and ships the
# enrolment files on the ESP. The key options are strings naming files on the build host, not
# Nix paths: the private keys are read by the build itself (as a nixbld user) and never copied
# into the Nix store. The public certificate and PCR key are read at evaluation, so a new key
# rebuilds the image.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf optional optionals;
  cfg = config.boot.secureBoot;
  hostPath = types.strMatching "/.+";
  keygen = "run `sonix keygen --secure-boot` and set boot.secureBoot.keyDirectory to the directory it prints";
  inDirectory = file: if cfg.keyDirectory == null then null else "${cfg.keyDirectory}/${file}";
  fileOption = { file, what }: mkOption {
    type = types.nullOr hostPath;
    default = inDirectory file;
    defaultText = lib.literalExpression ''"''${boot.secureBoot.keyDirectory}/${file}"'';
    example = "/srv/keys/secure-boot/${file}";
    description = ''
      ${what} A path on the build host (a string, never copied into the Nix store).
    '';
  };
  # Read at evaluation; a missing file is an error that names the command that makes it.
  readPublic = option: path:
    if path == null then throw "boot.secureBoot.${option} is not set; ${keygen}."
    else if !builtins.pathExists path then throw "boot.secureBoot.${option}: ${path} does not exist; ${keygen}."
    else builtins.readFile path;
  # Only checked for existence here; the build reads it (as a nixbld user).
  existing = option: path:
    if path == null then throw "boot.secureBoot.${option} is not set; ${keygen}."
    else if !builtins.pathExists path then throw "boot.secureBoot.${option}: ${path} does not exist; ${keygen}."
    else path;
  enrolFile = name: let path = "${cfg.enrolmentKeys}/${name}.auth"; in
    if !builtins.pathExists path then throw "boot.secureBoot.enrolmentKeys: ${path} does not exist; ${keygen} (or set enrolmentKeys = null)."
    else builtins.path { inherit path; name = "${name}.auth"; };
  # What systemd-pcrphase, systemd-tpm2-setup and cryptsetup's tpm2 tokens dlopen().
  tpmLibraries = [ "libtss2-esys.so.0" "libtss2-mu.so.0" "libtss2-rc.so.0" "libtss2-tcti-device.so.0" ];
in
{
  options.boot.secureBoot = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Sign systemd-boot and the UKI with the owner's db key (sbsign, through ukify), embed a
        signed PCR 11 policy in the UKI, and ship the owner's PK, KEK and db as enrolment
        files on the ESP (`loader/keys/auto/`), so that a machine in setup mode enrols them on
        its first boot ({option}`boot.secureBoot.enrol`). `sonix keygen --secure-boot` makes
        the keys once.
      '';
    };
    keyDirectory = mkOption {
      type = types.nullOr hostPath;
      default = null;
      example = "/home/me/sonix/.sonix/keys/secure-boot";
      description = ''
        The directory that `sonix keygen --secure-boot` made (it prints it): the defaults of
        the other key options are files in it. A string naming a directory on the build host:
        the image build (a Nix build user, group `nixbld`) reads the private keys from there,
        so they stay out of the world-readable Nix store.
      '';
    };
    signingKey = fileOption { file = "db.key"; what = "The db private key (RSA, PEM) that signs systemd-boot and the UKI; readable by the group nixbld."; };
    signingCertificate = fileOption { file = "db.crt"; what = "The db certificate (PEM) that goes with {option}`boot.secureBoot.signingKey`; its content is part of the build."; };
    pcrPrivateKey = fileOption { file = "pcr-policy.key"; what = "The RSA private key (PEM) that signs the UKI's PCR 11 policy (`.pcrsig`); readable by the group nixbld."; };
    pcrPublicKey = fileOption { file = "pcr-policy.pub.pem"; what = "Its public key (PEM), embedded in the UKI as `.pcrpkey`: what TPM-sealed secrets are bound to."; };
    enrolmentKeys = mkOption {
      type = types.nullOr hostPath;
      default = cfg.keyDirectory;
      defaultText = lib.literalExpression "boot.secureBoot.keyDirectory";
      example = null;
      description = ''
        A directory with `PK.auth`, `KEK.auth` and `db.auth` (public), shipped on the ESP in
        `loader/keys/auto/` for systemd-boot to enrol. `null` ships none: for machines whose
        firmware already has the owner's keys (docs/secure-boot.md, "Real hardware").
      '';
    };
    enrol = mkOption {
      type = types.enum [ "off" "manual" "if-safe" "force" ];
      default = "if-safe";
      example = "force";
      description = ''
        systemd-boot's `secure-boot-enroll` (loader.conf) for a machine in setup mode.
        `if-safe` (the default) enrols the shipped keys by itself in a virtual machine and
        offers a menu entry on hardware; `force` enrols on hardware too, after a warning with
        a countdown. Only the owner's keys are enrolled (no Microsoft certificates), so
        `force` can leave a machine whose graphics or network card firmware (option ROMs) is
        signed by Microsoft unable to start them: use it for hardware known to need none.
        `manual` only offers the menu entry, `off` ignores the keys.
      '';
    };
    tpm = mkOption {
      type = types.bool;
      default = cfg.enable;
      defaultText = lib.literalExpression "boot.secureBoot.enable";
      example = false;
      description = ''
        What measured boot needs on the machine: the TPM2 software stack (tpm2-tss, which
        systemd loads on demand) in /usr and the initrd, `systemd-pcrextend` in the initrd
        for `systemd-pcrphase-initrd.service`, and the TPM2 generator left unmasked (it is
        in {option}`systemd.disabledGenerators` by default otherwise).
      '';
    };
    measurePcr15 = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether systemd measures the machine's identity into PCR 15 at boot:
        `systemd-pcrmachine.service` (the machine ID) and `systemd-pcrfs-root.service` /
        `systemd-pcrfs@.service` (each file system's UUID). No sonix policy reads PCR 15 (the
        sealed root binds to the signed PCR 11 policy, see {option}`boot.encryption.pcrs`), and
        each is a process and a TPM round trip early in boot, so the default masks them. Turn it
        on when your own TPM policies bind to PCR 15. Only with {option}`boot.secureBoot.tpm`.
      '';
    };
    signing = mkOption {
      internal = true;
      readOnly = true;
      type = types.nullOr (types.attrsOf types.unspecified);
      description = "What the image step reads (modules/system/build.nix); null without Secure Boot.";
    };
  };

  config = {
    boot.secureBoot.signing = if !cfg.enable then null else {
      signingKey = existing "signingKey" cfg.signingKey;
      certificate = readPublic "signingCertificate" cfg.signingCertificate;
      pcrPrivateKey = existing "pcrPrivateKey" cfg.pcrPrivateKey;
      pcrPublicKey = readPublic "pcrPublicKey" cfg.pcrPublicKey;
      enrol = cfg.enrol;
      enrolmentFiles = if cfg.enrolmentKeys == null then null
        else lib.genAttrs [ "PK" "KEK" "db" ] enrolFile;
    };

    assertions = optionals cfg.enable ([
      { assertion = !config.boot.isContainer;
        message = "boot.secureBoot.enable: a container (boot.isContainer) has no boot loader to sign; set it on the host."; }
    ] ++ map (option: {
      assertion = cfg.${option} != null;
      message = "boot.secureBoot.enable needs boot.secureBoot.${option}; ${keygen}.";
    }) [ "signingKey" "signingCertificate" "pcrPrivateKey" "pcrPublicKey" ]
    ++ map (option: {
      assertion = cfg.${option} == null || builtins.pathExists cfg.${option};
      message = "boot.secureBoot.${option}: ${toString cfg.${option}} does not exist; ${keygen}.";
    }) [ "signingKey" "signingCertificate" "pcrPrivateKey" "pcrPublicKey" ]);

    environment.packages = optionals (cfg.tpm && !config.boot.isContainer) [
      pkgs."libtss2-esys-3.0.2-0t64" pkgs."libtss2-mu-4.0.1-0t64" pkgs.libtss2-rc0t64 pkgs.libtss2-tcti-device0t64
    ]
    # sbverify: the update agent checks a new UKI against the db certificate before it
    # writes anything (docs/secure-boot.md, "Updates"); also there for the admin.
    ++ optional (cfg.enable && !config.boot.isContainer) pkgs.sbsigntool;
    # The db certificate (public): what a UKI must be signed with to boot on this machine.
    system.usrFiles = mkIf (cfg.enable && !config.boot.isContainer) {
      "lib/sonix/secure-boot/db.crt".text = cfg.signing.certificate;
    };
    # tpm2-tss depends on tpm-udev, whose udev rules give /dev/tpm* to `tss`; its postinst
    # makes the account with adduser (the same definition as in modules/services/fwupd.nix).
    users.users.tss = mkIf (cfg.tpm && !config.boot.isContainer) {
      isSystemUser = true;
      description = "TPM software stack";
      home = "/var/lib/tpm";
      shell = "/bin/false";
    };
    # systemd-tpm2-setup for Debian's systemd-tpm2-setup-early.service, which the initrd runs
    # on a measured boot (it failed there with 203/EXEC without it): it makes the TPM's storage
    # root key (SRK) persistent, which the sealed root's tpm2 token (boot.encryption) uses.
    boot.initrd.binaries = optionals cfg.tpm ([ "/usr/lib/systemd/systemd-pcrextend" "/usr/lib/systemd/systemd-tpm2-setup" ]
      ++ map (lib: "/usr/lib/x86_64-linux-gnu/${lib}") tpmLibraries);
  };
}
