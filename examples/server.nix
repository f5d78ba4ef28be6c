# A realistic sonix server: a static address on the first network card, DHCP elsewhere, users
# with SSH keys, a data disk, a service with a timer, and a bigger root partition. Later
# modules (SSH, updates, health checks, containers) extend this file.
{ lib, ... }:
{
  networking.hostName = "web-1";

  boot.kernel.consoles = [ "tty0" "ttyS0,115200" ];
  boot.loader.timeout = 3;

  # The uplink has a fixed address; every other Ethernet interface still uses DHCP
  # (networking.useDHCP, "80-sonix-ether" sorts after "10-uplink").
  systemd.network.networks."10-uplink" = {
    matchConfig.MACAddress = "52:54:00:12:34:56";
    networkConfig = {
      Address = "192.0.2.10/24";
      Gateway = "192.0.2.1";
      DNS = [ "192.0.2.53" "192.0.2.54" ];
    };
  };

  users.groups.deploy = { };
  users.users = {
    alice = {
      isNormalUser = true;
      uid = 1000;
      description = "Alice";
      extraGroups = [ "sudo" "systemd-journal" ];
      openssh.authorizedKeys.keys = [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk0o8rbBtFvGDe6y47mQXnObZ3JyJfBuo7q1cjHVN9e alice@laptop"
      ];
    };
    deploy = {
      isSystemUser = true;
      group = "deploy";
      home = "/var/lib/deploy";
      createHome = true;
    };
  };

  # The root partition takes at least 4 GiB; a swap partition of 1 GiB next to it.
  systemd.repart.partitions."50-root".SizeMinBytes = "4G";
  systemd.repart.partitions."60-swap" = {
    Type = "swap";
    Format = "swap";
    SizeMinBytes = "1G";
    SizeMaxBytes = "1G";
  };

  # A data disk, mounted when present.
  systemd.mounts = [ {
    description = "Application data";
    what = "/dev/disk/by-label/data";
    where = "/srv/data";
    type = "ext4";
    options = "noatime,nofail";
  } ];
  systemd.targets.local-fs.wants = [ "srv-data.mount" ];

  # A nightly job: a oneshot service and the timer that starts it.
  systemd.services.prune-data = {
    description = "Remove week-old files from /srv/data/tmp";
    after = [ "srv-data.mount" ];
    unitConfig.ConditionPathIsMountPoint = "/srv/data";
    serviceConfig = {
      Type = "oneshot";
      User = "deploy";
      Nice = 10;
    };
    script = ''
      find /srv/data/tmp -mindepth 1 -mtime +7 -delete
    '';
  };
  systemd.timers.prune-data.timerConfig = {
    OnCalendar = "daily";
    RandomizedDelaySec = "1h";
    Persistent = true;
  };
  systemd.targets.timers.wants = [ "prune-data.timer" ];

  systemd.tmpfiles.rules = [ "d /srv/data/tmp 1777 root root 7d" ];

  services.journald = {
    storage = "persistent";
    systemMaxUse = "1G";
    extraConfig = "MaxRetentionSec=3month";
  };

  environment.etc."motd".text = ''
    web-1: managed by sonix. Local changes to /etc/motd are replaced at boot.
  '';

  boot.kernelParams = lib.mkAfter [ "quiet" ];
}
