# services.resolved: systemd-resolved (its own Debian package since trixie) as the machine's
# resolver. Settings are a drop-in in /usr/lib/systemd/resolved.conf.d (resolved starts before
# /etc is complete on first boot); /etc/resolv.conf points to its stub. systemd-networkd hands
# it the DNS servers and search domains it learns by DHCP.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf concatStringsSep optional;
  cfg = config.services.resolved;
  sd = import ../system/systemd/lib.nix { inherit lib; };

  resolvConfTargets = {
    stub = "../run/systemd/resolve/stub-resolv.conf";
    uplink = "../run/systemd/resolve/resolv.conf";
    static = "../usr/lib/systemd/resolv.conf";
  };

  settings = {
    DNS = if cfg.dns == [ ] then null else concatStringsSep " " cfg.dns;
    FallbackDNS = if cfg.fallbackDns == null then null else concatStringsSep " " cfg.fallbackDns;
    Domains = if cfg.domains == [ ] then null else concatStringsSep " " cfg.domains;
    DNSSEC = cfg.dnssec;
    LLMNR = cfg.llmnr;
  };
in
{
  options.services.resolved = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether systemd-resolved resolves host names for the machine (a caching stub resolver
        on 127.0.0.53, with the DNS servers of {option}`services.resolved.dns` and those that
        systemd-networkd learns by DHCP).
      '';
    };

    dns = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "192.0.2.53" "2001:db8::53" "9.9.9.9#dns.quad9.net" ];
      description = ''
        DNS servers used for every interface (`DNS=`), besides the per-link servers from DHCP.
        An address may carry a port (`192.0.2.53:5353`), an interface (`%eth0`) and a server
        name for DNS over TLS (`#dns.example.com`).
      '';
    };

    fallbackDns = mkOption {
      type = types.nullOr (types.listOf types.str);
      default = [ ];
      example = [ "192.0.2.53" ];
      description = ''
        Servers used when no other server is known (`FallbackDNS=`). The default, an empty
        list, means none: a server never sends queries to a public resolver it was not told to
        use. `null` keeps systemd's compiled-in list (Cloudflare, Google, Quad9).
      '';
    };

    domains = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "example.com" "~corp.example.com" ];
      description = ''
        Search domains (`Domains=`); a domain with a leading `~` only routes queries for it to
        these servers, `~.` routes all queries to them.
      '';
    };

    dnssec = mkOption {
      type = types.either types.bool (types.enum [ "allow-downgrade" ]);
      default = false;
      example = "allow-downgrade";
      description = ''
        DNSSEC validation (`DNSSEC=`): `true` refuses answers that fail validation (and breaks
        resolution behind resolvers that strip signatures), `allow-downgrade` validates only
        when the server supports DNSSEC, `false` does not validate.
      '';
    };

    llmnr = mkOption {
      type = types.either types.bool (types.enum [ "resolve" ]);
      default = false;
      example = "resolve";
      description = ''
        Link-Local Multicast Name Resolution (`LLMNR=`): `true` resolves and answers,
        `resolve` only resolves, `false` does neither. Off: a server does not announce its name
        to the local network. (Multicast DNS is off through Debian's own drop-in.)
      '';
    };

    resolvConf = mkOption {
      type = types.enum [ "stub" "uplink" "static" "none" ];
      default = "stub";
      description = ''
        What /etc/resolv.conf is, for programs that read it rather than asking through NSS:
        `stub` a link to /run/systemd/resolve/stub-resolv.conf (the stub resolver 127.0.0.53,
        with the search domains), `uplink` a link to /run/systemd/resolve/resolv.conf (the
        upstream servers, bypassing resolved), `static` a link to
        /usr/lib/systemd/resolv.conf (127.0.0.53 without search domains), `none` leaves
        /etc/resolv.conf alone. The links are made again at every boot.
      '';
    };

    extraConfig = mkOption {
      type = types.lines;
      default = "";
      example = "DNSOverTLS=opportunistic\nCache=no-negative\n";
      description = "Lines added to the `[Resolve]` section (see resolved.conf(5)).";
    };
  };

  config = mkIf cfg.enable {
    environment.packages = [ pkgs.systemd-resolved ];

    system.usrFiles = {
      # 50- sorts after Debian's 00-disable-mdns.conf (MulticastDNS=no), which stays in effect.
      "lib/systemd/resolved.conf.d/50-sonix.conf".text =
        sd.renderDropin "Resolve" settings cfg.extraConfig;
      # What `systemctl enable systemd-resolved` would link (resolvectl and networkd use D-Bus).
      "lib/systemd/system/dbus-org.freedesktop.resolve1.service".symlink = "systemd-resolved.service";
    };

    # The packaged unit's [Install] says sysinit.target: it starts before the network.
    systemd.targets.sysinit.wants = [ "systemd-resolved.service" ];

    # The package's own tmpfiles.d line is `L!` (created only if missing, so a file that was
    # there first wins). `L+` replaces whatever is there: the configuration owns the file.
    # 50-sonix.conf sorts before systemd-resolve.conf, and for one path the first file wins.
    systemd.tmpfiles.rules = optional (cfg.resolvConf != "none")
      "L+ /etc/resolv.conf - - - - ${resolvConfTargets.${cfg.resolvConf}}";

    assertions = [ {
      assertion = cfg.resolvConf == "none" || !(lib.any (f: f.enable && f.target == "resolv.conf") (lib.attrValues config.environment.etc));
      message = "environment.etc.\"resolv.conf\" and services.resolved both want /etc/resolv.conf: remove the environment.etc entry, or set services.resolved.resolvConf = \"none\" to keep it.";
    } ];
  };
}
