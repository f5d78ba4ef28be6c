# services.timesyncd: systemd-timesyncd (its own Debian package since trixie), an SNTP client
# that sets the clock. Settings are a drop-in in /usr/lib/systemd/timesyncd.conf.d, like
# journald's; systemd-networkd hands it the NTP servers it learns by DHCP.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf;
  cfg = config.services.timesyncd;
  sd = import ../system/systemd/lib.nix { inherit lib; };

  settings = {
    NTP = if cfg.servers == [ ] then null else lib.concatStringsSep " " cfg.servers;
    FallbackNTP = if cfg.fallbackServers == null then null else lib.concatStringsSep " " cfg.fallbackServers;
  };
in
{
  options.services.timesyncd = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether systemd-timesyncd keeps the clock in time (SNTP). It saves the time to
        /var/lib/systemd/timesync/clock, so a machine without a real-time clock does not boot
        with a clock older than its last shutdown.
      '';
    };

    servers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "ntp.example.com" "192.0.2.123" ];
      description = ''
        NTP servers (`NTP=`), tried in order, besides the ones systemd-networkd learns by
        DHCP. Empty: only those from DHCP, else the fallback servers.
      '';
    };

    fallbackServers = mkOption {
      type = types.nullOr (types.listOf types.str);
      default = null;
      example = [ ];
      description = ''
        Servers used when no other is known (`FallbackNTP=`). `null` keeps Debian's
        (0.debian.pool.ntp.org to 3.debian.pool.ntp.org); an empty list means none.
      '';
    };

    extraConfig = mkOption {
      type = types.lines;
      default = "";
      example = "PollIntervalMaxSec=1024\nRootDistanceMaxSec=10\n";
      description = "Lines added to the `[Time]` section (see timesyncd.conf(5)).";
    };
  };

  config = mkIf cfg.enable {
    environment.packages = [ pkgs.systemd-timesyncd ];

    system.usrFiles = {
      "lib/systemd/timesyncd.conf.d/50-sonix.conf".text =
        sd.renderDropin "Time" settings cfg.extraConfig;
      # What `systemctl enable systemd-timesyncd` would link (timedatectl uses D-Bus).
      "lib/systemd/system/dbus-org.freedesktop.timesync1.service".symlink = "systemd-timesyncd.service";
    };

    # The packaged unit's [Install] says sysinit.target; its user (systemd-timesync) comes from
    # the package's sysusers.d file, its state directory from StateDirectory=.
    systemd.targets.sysinit.wants = [ "systemd-timesyncd.service" ];
  };
}
