# /etc: the image has none. `environment.etc` files go into the factory tree
# (/usr/share/factory/etc, read-only with the rest of /usr) and systemd-tmpfiles puts them into
# /etc at boot: as symbolic links by default, so that an update of /usr updates them too, or as
# copies seeded once. On first boot the initrd already fills /sysroot/etc (sysusers + tmpfiles),
# because PID 1 and early services read /etc (hostname, ...) before systemd-tmpfiles-setup runs.
{ lib, config, ... }:
let
  inherit (lib) mkOption types concatMap concatStringsSep optional filter attrValues;
  cfg = config.environment.etc;
  enabled = filter (f: f.enable) (attrValues cfg);
  targets = map (f: f.target) enabled;

  etcFile = types.submodule ({ name, config, ... }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether the file is put into /etc.";
      };
      target = mkOption {
        type = types.strMatching "[^/].*";
        default = name;
        defaultText = lib.literalMD "the attribute name";
        example = "ssh/sshd_config.d/50-sonix.conf";
        description = "The path below /etc.";
      };
      text = mkOption {
        type = types.nullOr types.lines;
        default = null;
        example = "options edns0\n";
        description = "The file's contents. Set this or `source`.";
      };
      source = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = lib.literalExpression "./motd";
        description = "A file or directory to install. Set this or `text`.";
      };
      mode = mkOption {
        type = types.either (types.enum [ "symlink" ]) (types.strMatching "[0-7]{3,4}");
        default = "symlink";
        example = "0600";
        description = ''
          `symlink`: /etc/<target> is a link into the read-only factory tree, recreated on every
          boot, so it always has the contents of the running release. An octal mode: the file is
          copied into /etc with this mode (and `user`/`group`) when it does not exist yet, and is
          then the machine's to change; later releases do not touch it.
        '';
      };
      user = mkOption {
        type = types.str;
        default = "root";
        example = "nginx";
        description = "Owner of a copied file (not of a symlink).";
      };
      group = mkOption {
        type = types.str;
        default = "root";
        description = "Group of a copied file (not of a symlink).";
      };
    };
  });

  factory = f: "share/factory/etc/${f.target}";

  tmpfilesLines = f:
    if f.mode == "symlink" then [ "L+ /etc/${f.target} - - - - /usr/${factory f}" ]
    else [
      "C /etc/${f.target} ${f.mode} ${f.user} ${f.group} -"
      # The C line's mode and owner only apply when it copies; z keeps them right afterwards.
      "z /etc/${f.target} ${f.mode} ${f.user} ${f.group} -"
    ];
in
{
  options.environment.etc = mkOption {
    type = types.attrsOf etcFile;
    default = { };
    example = lib.literalExpression ''
      {
        "motd".text = "Welcome to a sonix server\n";
        "ssh/ssh_host_ed25519_key.pub" = { source = ./host-key.pub; mode = "0644"; };
      }
    '';
    description = ''
      Files in /etc, by path below /etc. They are shipped in /usr/share/factory/etc and installed
      by systemd-tmpfiles (`/usr/lib/tmpfiles.d/00-sonix-etc.conf`), in the initrd on first boot
      and by systemd-tmpfiles-setup.service on every boot. Configuration that early services
      read (udev, sysctl, networkd, journald) belongs in /usr instead and has its own options.
    '';
  };

  options.boot.initrd.seedEtc = mkOption {
    type = types.bool;
    default = true;
    description = ''
      Whether the initrd fills /etc of a new root before switching to it (first boot only: when
      /sysroot/etc/machine-id is missing), with `systemd-sysusers --root=/sysroot` and
      `systemd-tmpfiles --root=/sysroot --create --prefix=/etc`. Without it the first boot runs
      with the defaults of every /etc file read before systemd-tmpfiles-setup.service (the host
      name is then "localhost").
    '';
  };

  config = {
    environment.etc."nsswitch.conf".text = lib.mkDefault ''
      passwd:         files systemd
      group:          files systemd
      shadow:         files systemd
      gshadow:        files systemd

      hosts:          files dns
      networks:       files

      protocols:      files
      services:       files
      ethers:         files
      rpc:            files
    '';

    system.usrFiles = lib.listToAttrs (map (f: lib.nameValuePair (factory f) (
      { mode = if f.mode == "symlink" then "0644" else f.mode; }
      // (if f.text != null then { inherit (f) text; } else { inherit (f) source; })
    )) enabled) // {
      "lib/tmpfiles.d/00-sonix-etc.conf".text = concatStringsSep "\n" ([
        # /etc/os-release (a link to ../usr/lib/os-release) and the packages' /etc files are the
        # image builder's: it writes 10-sonix-factory-etc.conf for what these lines leave.
        "# Generated by sonix from environment.etc: /etc from /usr/share/factory/etc."
      ] ++ concatMap tmpfilesLines enabled) + "\n";
    };

    assertions = concatMap (f:
      optional ((f.text == null) == (f.source == null)) {
        assertion = false;
        message = "environment.etc.\"${f.target}\" must set exactly one of `text` or `source`.";
      }
      ++ optional (f.mode == "symlink" && (f.user != "root" || f.group != "root")) {
        assertion = false;
        message = "environment.etc.\"${f.target}\" sets an owner (${f.user}:${f.group}) but is a symlink; give it a `mode` (for example \"0640\") to make it a copy.";
      }
      ++ optional (lib.hasInfix ".." f.target) {
        assertion = false;
        message = "environment.etc.\"${f.target}\": the target must not contain `..`.";
      }) enabled
      ++ map (target: {
        assertion = false;
        message = "environment.etc: more than one entry has the target \"${target}\"; keep one.";
      }) (lib.unique (filter (t: lib.count (x: x == t) targets > 1) targets));

    boot.initrd.systemd.services.sonix-etc-seed = lib.mkIf config.boot.initrd.seedEtc {
      description = "Populate /sysroot/etc from /usr/share/factory (first boot)";
      requires = [ "sysroot.mount" "sysroot-usr.mount" ];
      after = [ "sysroot.mount" "sysroot-usr.mount" ];
      before = [ "initrd-fs.target" ];
      unitConfig = {
        DefaultDependencies = false;
        ConditionPathExists = [ "/etc/initrd-release" "!/sysroot/etc/machine-id" ];
      };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = [
          "/usr/bin/systemd-sysusers --root=/sysroot"
          "/usr/bin/systemd-tmpfiles --root=/sysroot --create --prefix=/etc"
        ];
      };
    };
    boot.initrd.systemd.targets.initrd-fs.wants = lib.mkIf config.boot.initrd.seedEtc [ "sonix-etc-seed.service" ];
    boot.initrd.binaries = lib.mkIf config.boot.initrd.seedEtc [ "/usr/bin/systemd-sysusers" "/usr/bin/systemd-tmpfiles" ];
  };
}
