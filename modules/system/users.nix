# Users and groups: systemd-sysusers creates them on first boot from
# /usr/lib/sysusers.d/sonix.conf (and from the packages' sysusers.d files); there is no
# activation script. Home directories come from tmpfiles, SSH keys from /etc.
{ lib, config, ... }:
let
  inherit (lib) mkOption types concatStringsSep concatMap optional optionals attrValues filter
    mapAttrsToList;
  cfg = config.users;

  userOpts = { name, config, ... }: {
    options = {
      name = mkOption {
        type = types.passwdEntry types.str;
        default = name;
        defaultText = lib.literalMD "the attribute name";
        description = "The user name.";
      };
      uid = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 1000;
        description = ''
          The user ID. `null`: a system user gets one from systemd-sysusers (below 1000); a normal
          user gets the next free one from 1000 up, in the order of the user names. Give normal
          users a fixed `uid` when users come and go, so that files keep their owner.
        '';
      };
      group = mkOption {
        type = types.nullOr (types.passwdEntry types.str);
        default = if config.isNormalUser then "users" else null;
        defaultText = lib.literalMD "`\"users\"` for normal users, otherwise `null`";
        example = "nginx";
        description = ''
          The primary group (it must exist: a Debian group or one from {option}`users.groups`).
          `null` creates a group named like the user, with the same ID.
        '';
      };
      extraGroups = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "sudo" "systemd-journal" ];
        description = "Supplementary groups (sysusers `m` lines).";
      };
      description = mkOption {
        type = types.passwdEntry types.str;
        default = "";
        example = "Alice Liddell";
        description = "The GECOS field: usually the person's full name.";
      };
      home = mkOption {
        type = types.passwdEntry types.str;
        default = if config.isNormalUser then "/home/${config.name}" else "/";
        defaultText = lib.literalMD "`/home/<name>` for normal users, otherwise `/`";
        description = "The home directory.";
      };
      createHome = mkOption {
        type = types.bool;
        default = config.isNormalUser;
        defaultText = lib.literalMD "`isNormalUser`";
        description = "Whether systemd-tmpfiles creates the home directory (mode 0700, owned by the user).";
      };
      shell = mkOption {
        type = types.passwdEntry types.str;
        default = if config.isNormalUser then "/usr/bin/bash" else "/usr/sbin/nologin";
        defaultText = lib.literalMD "`/usr/bin/bash` for normal users, otherwise `/usr/sbin/nologin`";
        description = "The login shell (an absolute path in /usr).";
      };
      isSystemUser = mkOption {
        type = types.bool;
        default = false;
        description = "Whether the user is a system user (an account for a service, ID below 1000).";
      };
      isNormalUser = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether the user is a person: ID from 1000, group `users`, home in /home (created),
          bash as the shell.
        '';
      };
      hashedPassword = mkOption {
        type = types.nullOr (types.passwdEntry types.str);
        default = null;
        example = "$y$j9T$...";
        description = ''
          The password hash (`mkpasswd -m yescrypt`), set when systemd-sysusers creates the user,
          that is on the first boot only (through the `passwd.hashed-password.<name>` credential
          of the initrd's /etc seeding and of systemd-sysusers.service). The hash ends up in unit
          files of /usr and of the initrd, which anyone can read. `null`: the account has no
          password (it is locked for password logins; SSH keys still work).
        '';
      };
      openssh.authorizedKeys.keys = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... alice@laptop" ];
        description = ''
          SSH public keys that may log in as this user, installed as
          `/etc/ssh/authorized_keys.d/<name>` (the SSH module adds that path to sshd's
          `AuthorizedKeysFile`). They follow the configuration on every update; keys the user adds
          to `~/.ssh/authorized_keys` stay theirs.
        '';
      };
    };
  };

  groupOpts = { name, ... }: {
    options = {
      name = mkOption {
        type = types.passwdEntry types.str;
        default = name;
        defaultText = lib.literalMD "the attribute name";
        description = "The group name.";
      };
      gid = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 2000;
        description = "The group ID; `null`: systemd-sysusers picks one (below 1000).";
      };
      members = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "alice" ];
        description = "Users added to the group (besides the users that list it in `extraGroups`).";
      };
    };
  };

  users = attrValues cfg.users;
  groups = attrValues cfg.groups;

  # Normal users without a uid: the next free IDs from 1000, in name order.
  taken = filter (u: u != null) (map (u: u.uid) users);
  autoNormal = lib.sortOn (u: u.name) (filter (u: u.isNormalUser && u.uid == null) users);
  freeFrom = n: count: if count == 0 then [ ] else
    if lib.elem n taken then freeFrom (n + 1) count else [ n ] ++ freeFrom (n + 1) (count - 1);
  autoUids = lib.listToAttrs (lib.zipListsWith (u: id: lib.nameValuePair u.name id)
    autoNormal (freeFrom 1000 (lib.length autoNormal)));
  uidOf = u: if u.uid != null then u.uid else autoUids.${u.name} or null;

  quote = s: "\"${s}\"";
  # The root account comes from Debian's basic.conf; sonix only adds its password and keys.
  declared = filter (u: u.name != "root") users;
  userLine = u:
    let
      id = (if uidOf u == null then "-" else toString (uidOf u))
        + lib.optionalString (u.group != null) ":${u.group}";
    in
    "u ${u.name} ${id} ${if u.description == "" then "-" else quote u.description} ${u.home} ${u.shell}";
  groupLine = g: "g ${g.name} ${if g.gid == null then "-" else toString g.gid}";
  memberLines = concatMap (u: map (g: "m ${u.name} ${g}") u.extraGroups) users
    ++ concatMap (g: map (u: "m ${u} ${g.name}") g.members) groups;

  withPassword = filter (u: u.hashedPassword != null) users;
  credentials = map (u: "passwd.hashed-password.${u.name}:${u.hashedPassword}") withPassword;
in
{
  options.users = {
    users = mkOption {
      type = types.attrsOf (types.submodule userOpts);
      default = { };
      example = lib.literalExpression ''
        {
          alice = {
            isNormalUser = true;
            uid = 1000;
            extraGroups = [ "sudo" ];
            openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA... alice@laptop" ];
          };
          backup = { isSystemUser = true; group = "backup"; home = "/var/lib/backup"; createHome = true; };
        }
      '';
      description = ''
        User accounts, created by systemd-sysusers on first boot (or on the first boot of a release
        that adds them). sysusers never changes an existing account: a changed shell, home or
        group only applies to a new machine.
      '';
    };
    groups = mkOption {
      type = types.attrsOf (types.submodule groupOpts);
      default = { };
      example = lib.literalExpression ''{ backup = { }; developers.members = [ "alice" ]; }'';
      description = "Groups, created by systemd-sysusers like the users.";
    };
  };

  config = {
    system.usrFiles."lib/sysusers.d/sonix.conf".text = concatStringsSep "\n" ([
      "# Generated by sonix from users.users and users.groups."
    ] ++ map groupLine groups ++ map userLine declared ++ memberLines) + "\n";

    systemd.tmpfiles.rules = map (u: "d ${u.home} 0700 ${u.name} ${if u.group == null then u.name else u.group} -")
      (filter (u: u.createHome) users);

    environment.etc = lib.listToAttrs (map (u: lib.nameValuePair "ssh/authorized_keys.d/${u.name}" {
      text = concatStringsSep "\n" u.openssh.authorizedKeys.keys + "\n";
    }) (filter (u: u.openssh.authorizedKeys.keys != [ ]) users));

    # sysusers reads password hashes from credentials; both places that run it on first boot
    # get them (the initrd's /etc seeding normally creates the accounts).
    systemd.services.systemd-sysusers = lib.mkIf (credentials != [ ]) {
      overrideStrategy = "asDropin";
      serviceConfig.SetCredential = credentials;
    };
    boot.initrd.systemd.services.sonix-etc-seed = lib.mkIf (credentials != [ ] && config.boot.initrd.seedEtc) {
      serviceConfig.SetCredential = credentials;
    };

    assertions = concatMap (u:
      optional (u.isNormalUser == u.isSystemUser && u.name != "root") {
        assertion = false;
        message = "users.users.${lib.escapeNixIdentifier u.name}: set exactly one of `isNormalUser` or `isSystemUser`.";
      }
      ++ optional (u.isNormalUser && uidOf u != null && uidOf u < 1000) {
        assertion = false;
        message = "users.users.${lib.escapeNixIdentifier u.name} is a normal user, so its uid must be 1000 or more (it is ${toString (uidOf u)}).";
      }) users
      ++ optionals (lib.length taken != lib.length (lib.unique taken)) [ {
        assertion = false;
        message = "users.users: these uids are used more than once: ${concatStringsSep ", " (map toString (lib.unique (filter (id: lib.count (x: x == id) taken > 1) taken)))}.";
      } ];

    # Declared here so that users.users.root can be given a password or SSH keys.
    users.users.root = {
      uid = 0;
      group = lib.mkDefault "root";
      home = lib.mkDefault "/root";
      shell = lib.mkDefault "/usr/bin/bash";
      description = lib.mkDefault "root";
    };
  };
}
