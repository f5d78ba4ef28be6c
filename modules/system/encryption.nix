# Sealed state (issue 15; docs/secure-boot.md, "Sealed state"): systemd-repart creates the root
# partition on first boot as LUKS2 whose key the TPM releases only to a UKI signed with the
# owner's PCR policy key (PCR 11, the signed policy that ukify embeds as `.pcrsig`), so any
# release the owner signed unlocks it, a rollback included, and no re-enrolment is needed at an
# update. gpt-auto-generator in the initrd opens it on later boots (systemd-cryptsetup@root,
# `tpm2-device=auto`). A recovery key is the systemd credential `sonix.encryption.recovery-key`.
{ lib, config, ... }:
let
  inherit (lib) mkOption types mkIf mkDefault mkForce concatMapStringsSep;
  sd = import ./systemd/lib.nix { inherit lib; };
  cfg = config.boot.encryption;
  sb = config.boot.secureBoot;
  credential = "sonix.encryption.recovery-key";
  publicKey = "/usr/lib/systemd/tpm2-pcr-public-key.pem";
  recoveryDefinitions = "/usr/lib/sonix/repart-recovery.d";
  pcrList = concatMapStringsSep "+" toString cfg.pcrs;

  # systemd-repart in the initrd, sealed. Before anything is written: is there a root already
  # (then repart creates nothing and needs no TPM), is there a TPM, was a recovery key given.
  repart = ''
    #!/bin/sh
    # systemd-repart with sealed state (boot.encryption; docs/secure-boot.md, "Sealed state").
    set -u
    say() { echo "sonix-repart: $*" >&2; }

    set -- --dry-run=no --tpm2-device=auto \
      --tpm2-public-key=${publicKey} --tpm2-public-key-pcrs=11 --tpm2-pcrs=${pcrList}

    # The disk's partitions are known to udev before /usr is mounted (repart runs after
    # initrd-usr-fs.target); settle so that an existing root has its /dev/gpt-auto-root* link.
    udevadm settle --timeout=30 || :
    if [ -e /dev/gpt-auto-root ] || [ -e /dev/gpt-auto-root-luks ]; then
      exec systemd-repart "$@" --definitions=/usr/lib/repart.d
    fi

    # First boot: repart is about to create the root, encrypted and sealed to the TPM.
    if [ ! -e /dev/tpmrm0 ]; then
      say "boot.encryption: this machine has no TPM 2.0 (no /dev/tpmrm0), and the root partition is to be created sealed to one."
      say "Nothing was written to the disk. Enable the TPM 2.0 (firmware setup; for a VM, add one: sonix run --tpm), or build the image without boot.encryption.enable, and boot again."
      exit 1
    fi
    key="''${CREDENTIALS_DIRECTORY:-/nonexistent}/${credential}"
    if [ -f "$key" ]; then
      # The credential's text is the passphrase; a trailing newline (echo) is not part of it,
      # as it is not when someone types it at the prompt.
      copy="$RUNTIME_DIRECTORY/recovery-key"
      umask 077
      printf '%s' "$(cat "$key")" > "$copy"
      say "creating the root partition: LUKS2, sealed to the TPM (PCR 11 policy signed by the owner${lib.optionalString (cfg.pcrs != [ ]) ", PCRs ${pcrList}"}) and the recovery key of the credential ${credential}"
      systemd-repart "$@" --key-file="$copy" --definitions=${recoveryDefinitions}
      status=$?
      : > "$copy"
      exit $status
    fi
    say "creating the root partition: LUKS2, sealed to the TPM (PCR 11 policy signed by the owner${lib.optionalString (cfg.pcrs != [ ]) ", PCRs ${pcrList}"})"
    say "warning: no recovery key (credential ${credential}): only this machine's TPM can unlock the root; add one with: systemd-cryptenroll --unlock-tpm2-device=auto --recovery-key /dev/gpt-auto-root-luks"
    exec systemd-repart "$@" --definitions=/usr/lib/repart.d
  '';
in
{
  options.boot.encryption = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Sealed state: systemd-repart creates the root partition on first boot as LUKS2
        (`Encrypt=tpm2`) whose key the TPM 2.0 releases only while PCR 11 holds a value that
        the owner's PCR policy key ({option}`boot.secureBoot.pcrPublicKey`) signed, i.e. in
        the initrd of a UKI that the owner built and signed. Every signed release, a
        rollback included, unlocks it with no prompt and no re-enrolment; a UKI signed by
        anyone else does not. Needs {option}`boot.secureBoot.enable` and a TPM 2.0 at first
        boot (without one the boot stops before anything is written). A recovery key can be
        given at first boot as the systemd credential `sonix.encryption.recovery-key`
        (docs/secure-boot.md, "Sealed state"). Only a root that repart creates is encrypted:
        an existing plain root stays as it is.
      '';
    };
    pcrs = mkOption {
      type = types.listOf (types.ints.between 0 23);
      default = [ ];
      example = [ 7 ];
      description = ''
        PCRs whose values at first boot the key is also bound to, besides the signed PCR 11
        policy (systemd-repart's `--tpm2-pcrs=`). `[ 7 ]` binds it to the Secure Boot state
        (the enrolled keys and dbx): a firmware update that changes db or dbx then needs the
        recovery key and a re-enrolment. PCR 11 itself cannot be listed: its value changes
        with every release, which is what the signed policy is for.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      { assertion = sb.enable;
        message = "boot.encryption.enable seals the root to the UKI's signed PCR 11 policy and needs boot.secureBoot.enable (with the keys of `sonix keygen --secure-boot`)."; }
      { assertion = !sb.enable || sb.tpm;
        message = "boot.encryption.enable needs the TPM stack in the initrd: leave boot.secureBoot.tpm on."; }
      { assertion = config.systemd.repart.enable;
        message = "boot.encryption.enable: the encrypted root is created by systemd-repart on first boot; leave systemd.repart.enable on."; }
      { assertion = !config.boot.isContainer;
        message = "boot.encryption.enable: a container (boot.isContainer) has no disk of its own to encrypt; set it on the host."; }
      { assertion = !(lib.elem 11 cfg.pcrs);
        message = "boot.encryption.pcrs: PCR 11 changes with every release and is bound through the owner's signed policy already; remove 11 from the list."; }
      { assertion = lib.unique cfg.pcrs == cfg.pcrs;
        message = "boot.encryption.pcrs lists a PCR twice: ${toString cfg.pcrs}."; }
      { assertion = lib.elem (config.systemd.repart.partitions."50-root".Encrypt or null) [ null "tpm2" ];
        message = "boot.encryption.enable sets systemd.repart.partitions.\"50-root\".Encrypt itself (tpm2, or key-file+tpm2 when a recovery key is given); do not set it."; }
    ];

    systemd.repart.partitions."50-root".Encrypt = mkDefault "tpm2";

    boot.initrd.usrFiles = {
      "lib/systemd/tpm2-pcr-public-key.pem".text =
        if sb.signing == null then "" else sb.signing.pcrPublicKey;  # the assertion says why
      "lib/sonix/sonix-repart" = { mode = "0755"; text = repart; };
    } // lib.mapAttrs' (name: p: lib.nameValuePair "lib/sonix/repart-recovery.d/${name}.conf" {
      text = sd.renderSection "Partition" (p // lib.optionalAttrs (name == "50-root") {
        Encrypt = "key-file+tpm2";
      });
    }) config.systemd.repart.partitions;

    boot.initrd.systemd.services.systemd-repart = {
      # No wait for tpm2.target: the kernel's TPM drivers (TIS, CRB) are built in, so
      # /dev/tpmrm0 is there before the initrd starts. systemd-tpm2-generator (left out of the
      # initrd) would make tpm2.target wait 90 s for a TPM that OVMF claims but a VM without
      # swtpm does not have, and repart with it.
      unitConfig = {
        # No half-made machine: sonix-repart stops before repart when there is no TPM, and a
        # failing repart writes no partition table; either way the boot stops here, with the
        # reason on the console, rather than waiting for a root that will not come.
        OnFailure = "emergency.target";
        OnFailureJobMode = "replace-irreversibly";
      };
      serviceConfig = {
        ExecStart = mkForce [ "" "/usr/lib/sonix/sonix-repart" ];
        ImportCredential = [ credential ];
        # The recovery key's copy without its newline; removed when the unit stops (at
        # switch-root), emptied before.
        RuntimeDirectory = "sonix-repart";
        RuntimeDirectoryMode = "0700";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
      };
    };

    boot.initrd.binaries = [
      "/usr/lib/systemd/systemd-cryptsetup"
      # libcryptsetup (already in the initrd, for verity) loads its token plugins from here:
      # this one unseals the key with the TPM (systemd-cryptsetup's tpm2-device=auto).
      "/usr/lib/x86_64-linux-gnu/cryptsetup/libcryptsetup-token-systemd-tpm2.so"
    ];
    # dm-crypt with aes-xts-plain64 (the kernel loads both on demand); aesni where the CPU has it.
    boot.initrd.availableKernelModules = [ "dm_crypt" "xts" "aesni_intel" ];
  };
}
