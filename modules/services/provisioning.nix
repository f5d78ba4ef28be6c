# Provisioning in the initrd (docs/provisioning.md): before switch-root, sonix-provision finds
# this machine's configuration (kernel command line, systemd credentials, config drive, EC2,
# GCE, matchbox), checks the Ignition config and writes it into the new root.
{ lib, config, ... }:
let
  inherit (lib) mkOption mkEnableOption types mkIf optional optionals;
  cfg = config.provisioning;
  allSources = [ "cmdline" "credentials" "openstack" "ec2" "gce" "matchbox" ];
  networkSources = [ "cmdline" "ec2" "gce" "matchbox" ];
  usesNetwork = lib.any (s: lib.elem s networkSources) cfg.sources;

  # The image's own python3, run from the new root's verity-protected /usr through its loader
  # (the initrd has no python): the provisioner adds nothing to the initrd.
  python = [
    "/sysroot/usr/lib64/ld-linux-x86-64.so.2"
    "--library-path" "/sysroot/usr/lib/x86_64-linux-gnu"
    "/sysroot/usr/bin/python3" "-I" "/sysroot/usr/lib/sonix/sonix-provision" "--root=/sysroot"
  ];
in
{
  options.provisioning = {
    enable = mkEnableOption "provisioning in the initrd from cloud metadata, systemd credentials or a matchbox server (Ignition v3 configs)";

    sources = mkOption {
      type = types.listOf (types.enum allSources);
      default = allSources;
      example = [ "credentials" "ec2" ];
      description = ''
        Where the configuration may come from, tried in this order; the first source that is
        there wins. `cmdline`: `sonix.config.url=` on the kernel command line. `credentials`:
        the `sonix.provision.config` systemd credential (QEMU `-smbios type=11` or fw_cfg).
        `openstack`: a config drive (label `config-2`). `ec2`: an EC2-style metadata service
        (IMDSv2) at 169.254.169.254. `gce`: a GCE-style metadata server. `matchbox`: a
        matchbox-style server (`sonix.matchbox.url=` or {option}`provisioning.matchbox.url`)
        that picks a profile by MAC address or machine UUID. Network sources bring up
        systemd-networkd in the initrd ({option}`boot.initrd.network.enable`).
      '';
    };

    everyBoot = mkOption {
      type = types.listOf (types.enum allSources);
      default = [ ];
      example = [ "matchbox" ];
      description = ''
        Sources whose configuration is applied again at every boot, declaratively: files,
        links and units that an earlier boot wrote and the configuration no longer names are
        removed (accounts are never removed). Other sources are used on the first boot only,
        as Ignition does; later boots only restore /run/metadata/sonix.
      '';
    };

    timeout = mkOption {
      type = types.ints.positive;
      default = 120;
      description = ''
        Seconds that the network sources may take together: a source that is there but does
        not answer is retried with backoff (0.5 s doubling to 8 s) until then.
      '';
    };

    onError = mkOption {
      type = types.enum [ "emergency" "continue" ];
      default = "emergency";
      description = ''
        What happens when the configuration is invalid or cannot be fetched or applied
        (nothing of it is written either way): `emergency` stops the boot in the initrd's
        emergency mode with the reason on the console and in the journal; `continue` boots
        the image as it is.
      '';
    };

    user = mkOption {
      type = types.passwdEntry types.str;
      default = "admin";
      description = ''
        The account that gets the SSH keys of the metadata (EC2 public keys, GCE ssh-keys,
        the config drive's keys), as Afterburn gives them to `core`. Created as a normal user
        when the image does not have it. Keys of an Ignition config go to the users it names.
      '';
    };

    matchbox.url = mkOption {
      type = types.nullOr (types.strMatching "https?://.+");
      default = null;
      example = "http://192.0.2.10:8080";
      description = ''
        The matchbox-style server (`sonix.matchbox.url=` on the kernel command line overrides
        it). Use an address: stage 1 resolves no names.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.all (s: lib.elem s cfg.sources) cfg.everyBoot;
        message = "provisioning.everyBoot names sources that provisioning.sources does not list: ${lib.concatStringsSep ", " (lib.filter (s: !lib.elem s cfg.sources) cfg.everyBoot)}.";
      }
    ];

    system.agents = [ "ignition" "metadata" "provision" "rootdir" ];
    system.usrFiles = {
      "lib/sonix/sonix-provision" = {
        mode = "0755";
        text = ''
          #!/usr/bin/python3
          # Provisioning in the initrd (docs/provisioning.md); sonix-provision.service runs it.
          import os, sys
          sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
          from agents.provision import main
          sys.exit(main(sys.argv[1:]))
        '';
      };
      "lib/sonix/provision.json".text = builtins.toJSON {
        inherit (cfg) sources everyBoot timeout onError user;
        matchboxUrl = cfg.matchbox.url;
      } + "\n";
    };

    boot.initrd.network.enable = mkIf usesNetwork true;
    # A config drive is vfat or ISO 9660.
    boot.initrd.availableKernelModules = optionals (lib.elem "openstack" cfg.sources)
      [ "isofs" "vfat" "nls_cp437" "nls_iso8859_1" "nls_utf8" ];

    boot.initrd.systemd.services.sonix-provision = {
      description = "Provision this machine (Ignition config, cloud metadata)";
      documentation = [ "https://example.invalid/sonix/docs/provisioning.md" ];
      requires = [ "sysroot.mount" "sysroot-usr.mount" ];
      after = [ "sysroot.mount" "sysroot-usr.mount" "initrd-root-fs.target" "sonix-etc-seed.service" ]
        ++ optional usesNetwork "systemd-networkd.service";
      before = [ "initrd.target" "initrd-parse-etc.service" "initrd-switch-root.target" ];
      unitConfig = {
        DefaultDependencies = false;
        ConditionPathExists = "/etc/initrd-release";
      } // lib.optionalAttrs (cfg.onError == "emergency") {
        OnFailure = "emergency.target";
        OnFailureJobMode = "replace-irreversibly";
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = lib.concatStringsSep " " python;
        ImportCredential = [ "sonix.provision.*" ];
        SyslogIdentifier = "sonix-provision";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
        # The network sources' own deadline, plus fetching the files a config names.
        TimeoutStartSec = "${toString (cfg.timeout + 300)}s";
      };
    };
    boot.initrd.systemd.targets.initrd.wants = [ "sonix-provision.service" ];
  };
}
