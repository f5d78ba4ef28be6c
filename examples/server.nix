# A realistic sonix server: a static address on the uplink, DHCP elsewhere, users with SSH
# keys, partitions made on first boot (root, swap, /srv), a tmpfs mount, a nightly job with its
# timer and a bigger journal. Later modules (SSH, updates, health checks, containers) extend
# this file. It fits the default VM disk of `sonix run` (4 GiB).
{ lib, pkgs, ... }:
{
  networking.hostName = "web-1";

  boot.kernel.consoles = [ "tty0" "ttyS0,115200" ];
  boot.loader.timeout = 3;
  boot.kernelParams = [ "quiet" ];

  # The uplink has a fixed address; every other Ethernet interface still uses DHCP
  # (networking.useDHCP: "80-sonix-ether" sorts after "10-uplink"). QEMU's network cards have
  # other addresses, so in a VM this example gets its address by DHCP.
  systemd.network.networks."10-uplink" = {
    matchConfig.MACAddress = "02:00:00:0a:00:01";
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
      extraGroups = [ "systemd-journal" "adm" ];
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

  # First boot: swap and /srv of fixed sizes; the root (at least 1 GiB) takes the rest of the
  # disk. systemd's gpt-auto-generator enables the swap and mounts /srv by their partition types;
  # no fstab.
  systemd.repart.partitions = {
    "50-root".SizeMinBytes = "1G";
    "60-swap" = { Type = "swap"; Format = "swap"; SizeMinBytes = "256M"; SizeMaxBytes = "256M"; };
    "70-srv" = { Type = "srv"; Format = "ext4"; SizeMinBytes = "512M"; SizeMaxBytes = "512M"; };
  };

  # A scratch area in memory, below the /srv partition (mount units order after their parents).
  systemd.mounts = [ {
    description = "Scratch space for uploads in progress";
    what = "tmpfs";
    where = "/srv/incoming";
    type = "tmpfs";
    options = "size=128M,mode=1777,nosuid,nodev";
  } ];
  systemd.targets.local-fs.wants = [ "srv-incoming.mount" ];

  # A nightly job: a oneshot service and the timer that starts it.
  environment.packages = [ pkgs.findutils ];
  systemd.tmpfiles.rules = [ "d /srv/uploads 0775 deploy deploy -" ];
  systemd.services.prune-uploads = {
    description = "Remove uploads older than a week";
    serviceConfig = {
      Type = "oneshot";
      User = "deploy";
      Nice = 10;
    };
    script = ''
      find /srv/uploads -mindepth 1 -mtime +7 -delete
    '';
  };
  systemd.timers.prune-uploads.timerConfig = {
    OnCalendar = "daily";
    RandomizedDelaySec = "1h";
    Persistent = true;
  };
  systemd.targets.timers.wants = [ "prune-uploads.timer" ];

  services.journald = {
    storage = "persistent";
    systemMaxUse = "256M";
    extraConfig = "MaxRetentionSec=3month";
  };

  environment.etc."motd".text = ''
    web-1: managed by sonix. Changes to /etc/motd are replaced at boot; edit the configuration.
  '';
}
