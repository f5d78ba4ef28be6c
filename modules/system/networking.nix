# The host name and systemd-networkd: .network/.netdev/.link files in /usr/lib/systemd/network
# (networkd starts before /etc is complete on first boot, so its configuration lives in /usr).
{ lib, config, ... }:
let
  inherit (lib) mkOption types mkIf mkDefault;
  sd = import ./systemd/lib.nix { inherit lib; };
  cfg = config.systemd.network;

  section = name: what: sd.sectionOption { section = name; inherit what; };

  # One file kind: which sections it has, as option name -> INI section name.
  fileOptions = what: sections: { ... }: {
    options = lib.mapAttrs (opt: sec: section sec what) sections // {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether the file is written.";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
        example = "[Route]\nGateway=192.0.2.1\nDestination=198.51.100.0/24\n";
        description = "Text appended to the file: for repeated sections such as `[Route]` or `[Address]`.";
      };
    };
  };

  networkSections = {
    matchConfig = "Match";
    linkConfig = "Link";
    networkConfig = "Network";
    addressConfig = "Address";
    routeConfig = "Route";
    dhcpV4Config = "DHCPv4";
    dhcpV6Config = "DHCPv6";
    ipv6AcceptRAConfig = "IPv6AcceptRA";
  };
  netdevSections = {
    matchConfig = "Match";
    netdevConfig = "NetDev";
    vlanConfig = "VLAN";
    bridgeConfig = "Bridge";
    bondConfig = "Bond";
    wireguardConfig = "WireGuard";
  };
  linkSections = {
    matchConfig = "Match";
    linkConfig = "Link";
  };

  # Sections in a stable, conventional order: [Match] first, then the others by name.
  render = sections: f:
    let
      order = [ "matchConfig" ] ++ lib.filter (n: n != "matchConfig") (lib.attrNames sections);
      ini = sd.renderIni (map (opt: { name = sections.${opt}; attrs = f.${opt}; }) order);
    in
    lib.concatStringsSep "\n" (lib.filter (s: s != "") [ ini f.extraConfig ]);

  filesOf = suffix: sections: attrs:
    lib.mapAttrs' (name: f: lib.nameValuePair "lib/systemd/network/${name}.${suffix}" { text = render sections f; })
      (lib.filterAttrs (_: f: f.enable) attrs);

  fileOption = { suffix, sections, what, example }: mkOption {
    type = types.attrsOf (types.submodule (fileOptions what sections));
    default = { };
    inherit example;
    description = ''
      systemd-networkd `.${suffix}` files, by file name without the suffix: `"10-lan"` is
      `/usr/lib/systemd/network/10-lan.${suffix}`. Files are read in name order; for
      `.network` and `.link` files the first that matches an interface wins. Each `*Config`
      option is one section (see systemd.${suffix}(5)).
    '';
  };
in
{
  options.networking = {
    hostName = mkOption {
      type = types.strMatching "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
      default = "sonix";
      example = "web-1";
      description = "The host name (/etc/hostname; put in place by the initrd on first boot).";
    };
    useDHCP = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether every Ethernet interface (`en*`, `eth*`) gets its addresses by DHCP (and IPv6 router
        advertisements), through `systemd.network.networks."80-sonix-ether"`. Files that sort
        before it (for example `"10-lan"`) take precedence for the interfaces they match.
      '';
    };
  };

  options.boot.initrd.network.kernelModules = mkOption {
    type = types.listOf types.str;
    default = [ "virtio_net" "ena" "gve" "vmxnet3" ];
    description = ''
      Network drivers in the initrd when {option}`boot.initrd.network.enable` is set (udev
      loads the one the hardware needs): virtio (QEMU/KVM, OpenStack), ENA (EC2), gVNIC
      (GCE), VMXNET3 (VMware).
    '';
  };

  options.boot.initrd.network.enable = mkOption {
    type = types.bool;
    default = false;
    description = ''
      Whether systemd-networkd runs in the initrd (stage 1), with DHCP on every Ethernet
      interface, so that units before switch-root (provisioning from a metadata service) can
      reach the network. It stops before switch-root; the booted system's networkd takes the
      interfaces over. Adds about 1 MiB to the initrd. Names in URLs are not resolved in
      stage 1: use addresses.
    '';
  };

  options.systemd.network = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = "Whether systemd-networkd configures the network (started with multi-user.target).";
    };
    networks = fileOption {
      suffix = "network";
      sections = networkSections;
      what = "the .network file";
      example = lib.literalExpression ''
        {
          "10-lan" = {
            matchConfig.MACAddress = "52:54:00:12:34:56";
            networkConfig = { Address = "192.0.2.10/24"; Gateway = "192.0.2.1"; DNS = [ "192.0.2.53" ]; };
          };
        }
      '';
    };
    netdevs = fileOption {
      suffix = "netdev";
      sections = netdevSections;
      what = "the .netdev file";
      example = lib.literalExpression ''
        { "20-br0".netdevConfig = { Name = "br0"; Kind = "bridge"; }; }
      '';
    };
    links = fileOption {
      suffix = "link";
      sections = linkSections;
      what = "the .link file";
      example = lib.literalExpression ''
        { "10-wan" = { matchConfig.MACAddress = "52:54:00:12:34:56"; linkConfig.Name = "wan0"; }; }
      '';
    };
  };

  config = lib.mkMerge [
    {
      environment.etc.hostname.text = "${config.networking.hostName}\n";
    }
    (mkIf cfg.enable {
      system.usrFiles = filesOf "network" networkSections cfg.networks
        // filesOf "netdev" netdevSections cfg.netdevs
        // filesOf "link" linkSections cfg.links
        # `systemctl enable systemd-networkd` would add this alias (networkctl uses D-Bus).
        // { "lib/systemd/system/dbus-org.freedesktop.network1.service".symlink = "systemd-networkd.service"; };

      systemd.targets.multi-user.wants = [ "systemd-networkd.service" ];
      systemd.targets.sockets.wants = [ "systemd-networkd.socket" ];
      # network-online.target waits for networkd's view of "online" (only when something wants it).
      systemd.targets.network-online.wants = [ "systemd-networkd-wait-online.service" ];
    })
    (mkIf config.boot.initrd.network.enable {
      boot.initrd.usrFiles."lib/systemd/network/80-sonix-initrd.network".text = ''
        # stage 1 (boot.initrd.network): DHCP on every Ethernet interface
        [Match]
        Type=ether
        Kind=!*

        [Network]
        DHCP=ipv4
        LinkLocalAddressing=no
        IPv6AcceptRA=no
      '';
      boot.initrd.availableKernelModules = config.boot.initrd.network.kernelModules;
      boot.initrd.systemd.targets.initrd.wants = [ "systemd-networkd.service" ];
      boot.initrd.systemd.targets.sockets.wants = [ "systemd-networkd.socket" ];
    })
    (mkIf (cfg.enable && config.networking.useDHCP) {
      systemd.network.networks."80-sonix-ether" = {
        matchConfig = { Type = mkDefault "ether"; Name = mkDefault "en* eth*"; };
        networkConfig = { DHCP = mkDefault "yes"; IPv6AcceptRA = mkDefault true; };
      };
    })
  ];
}
