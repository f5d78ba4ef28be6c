# services.nginx: Debian's nginx as a web server for static sites and reverse proxying, started
# by the packaged nginx.service. The whole nginx.conf is generated (an /etc link into the
# factory tree, so it follows updates); what the package's postinst would have done (log
# directory and files owned by www-data) is done by tmpfiles. A health check makes every
# listening port answer before a boot counts as good.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf concatStringsSep concatMap optional optionals
    mapAttrsToList filter unique;
  cfg = config.services.nginx;

  port = types.ints.between 1 65535;

  locationOptions = { ... }: {
    options = {
      root = mkOption {
        type = types.nullOr (types.strMatching "/.*");
        default = null;
        example = "/srv/www/static";
        description = "`root`: the directory the location's URIs are looked up in (the URI is appended).";
      };
      alias = mkOption {
        type = types.nullOr (types.strMatching "/.*");
        default = null;
        example = "/srv/www/downloads/";
        description = "`alias`: the directory that replaces the location's prefix in the URI.";
      };
      index = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "index.html index.htm";
        description = "`index`: the files tried for a URI that ends with a slash.";
      };
      tryFiles = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "$uri $uri/ /index.html";
        description = "`try_files`: files tried in order; the last one is the fallback URI or `=code`.";
      };
      proxyPass = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "http://127.0.0.1:8080";
        description = "`proxy_pass`: the server that requests for this location are passed to.";
      };
      return = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "301 https://example.com$request_uri";
        description = "`return`: answer with this status code (and URL or text) at once.";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
        example = "expires 7d;\n";
        description = "Directives added to the location block.";
      };
    };
  };

  virtualHostOptions = { name, ... }: {
    options = {
      serverName = mkOption {
        type = types.str;
        default = name;
        defaultText = lib.literalMD "the attribute name";
        example = "www.example.com";
        description = "`server_name`: the host name this virtual host answers for (`_` matches none in particular).";
      };
      serverAliases = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "example.com" ];
        description = "More host names of this virtual host.";
      };
      port = mkOption {
        type = port;
        default = 80;
        example = 8080;
        description = "The TCP port the virtual host listens on (plain HTTP).";
      };
      listenAddresses = mkOption {
        type = types.nonEmptyListOf types.str;
        default = [ "0.0.0.0" "[::]" ];
        example = [ "192.0.2.10" "[2001:db8::10]" ];
        description = "Addresses to listen on (IPv6 in brackets); every address with {option}`port`.";
      };
      default = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether this virtual host answers requests whose `Host` matches no other virtual host
          on its port (`default_server`). Otherwise the first virtual host (by name) on a port
          does.
        '';
      };
      root = mkOption {
        type = types.nullOr (types.strMatching "/.*");
        default = null;
        example = "/var/www/example";
        description = ''
          The directory served (`root`). `null`: nginx's compiled-in default,
          /usr/share/nginx/html (Debian's welcome page).
        '';
      };
      locations = mkOption {
        type = types.attrsOf (types.submodule locationOptions);
        default = { };
        example = lib.literalExpression ''
          {
            "/".tryFiles = "$uri $uri/ =404";
            "/api/".proxyPass = "http://127.0.0.1:8080";
          }
        '';
        description = "`location` blocks, by their match (a prefix, or `= /exact`, `~ regex`).";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
        example = "client_max_body_size 20m;\n";
        description = "Directives added to the `server` block.";
      };
    };
  };

  hosts = lib.sortOn (h: h.name) (mapAttrsToList (name: h: h // { inherit name; }) cfg.virtualHosts);
  ports = unique (map (h: h.port) hosts);

  indentBlock = prefix: text:
    map (l: if l == "" then "" else prefix + l) (lib.splitString "\n" (lib.removeSuffix "\n" text));

  directive = name: value: optional (value != null) "${name} ${value};";

  locationBlock = match: l: [ "location ${match} {" ] ++ map (s: "\t" + s) (
    directive "root" l.root ++ directive "alias" l.alias ++ directive "index" l.index
    ++ directive "try_files" l.tryFiles ++ directive "proxy_pass" l.proxyPass
    ++ directive "return" l.return
  ) ++ optionals (l.extraConfig != "") (indentBlock "\t" l.extraConfig) ++ [ "}" ];

  serverBlock = h: [ "server {" ] ++ map (s: if s == "" then "" else "\t" + s) (
    map (addr: "listen ${addr}:${toString h.port}${lib.optionalString h.default " default_server"};") h.listenAddresses
    ++ [ "server_name ${concatStringsSep " " ([ h.serverName ] ++ h.serverAliases)};" ]
    ++ directive "root" h.root
    ++ concatMap (m: [ "" ] ++ locationBlock m h.locations.${m}) (lib.attrNames h.locations)
    ++ optionals (h.extraConfig != "") ([ "" ] ++ indentBlock "" h.extraConfig)
  ) ++ [ "}" ];

  nginxConf = concatStringsSep "\n" ([
    "# Generated by sonix from services.nginx (see https://nginx.org/en/docs/)."
    "user www-data;"
    "worker_processes auto;"
    "pid /run/nginx.pid;"
    "error_log /var/log/nginx/error.log;"
    ""
    "events {"
    "\tworker_connections 768;"
    "}"
    ""
    "http {"
    "\tinclude /etc/nginx/mime.types;"
    "\tdefault_type application/octet-stream;"
    "\tsendfile on;"
    "\ttcp_nopush on;"
    "\ttypes_hash_max_size 2048;"
    "\tserver_tokens off;"
    "\taccess_log /var/log/nginx/access.log;"
    "\tgzip on;"
  ] ++ optionals (cfg.appendHttpConfig != "") ([ "" ] ++ indentBlock "\t" cfg.appendHttpConfig)
    ++ concatMap (h: [ "" ] ++ map (s: if s == "" then "" else "\t" + s) (serverBlock h)) hosts
    ++ [ "}" ]) + "\n";

  # Where the health check knocks: the first address of each virtual host (a wildcard
  # address is reached through loopback), once per address and port.
  probeAddress = addr:
    if addr == "0.0.0.0" then "127.0.0.1"
    else if addr == "[::]" then "::1"
    else lib.removePrefix "[" (lib.removeSuffix "]" addr);
  probes = lib.foldl' (acc: h:
    let p = { address = probeAddress (lib.head h.listenAddresses); inherit (h) port; host = h.serverName; }; in
    if lib.any (q: q.address == p.address && q.port == p.port) acc then acc else acc ++ [ p ]) [ ] hosts;

  healthScript = ''
    # Every port must answer an HTTP request (any status: 404 is an answer too). nginx has
    # bound its ports when nginx.service is active; the retries cover a slow first start.
    exec /usr/bin/python3 - <<'EOF'
    import http.client, sys, time
    probes = ${builtins.toJSON (map (p: [ p.address p.port p.host ]) probes)}
    for address, port, host in probes:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection(address, port, timeout=10)
                connection.request("HEAD", "/", headers={"Host": host})
                status = connection.getresponse().status
                print(f"nginx answers on {address} port {port} ({host}): {status}")
                break
            except OSError as error:
                if time.monotonic() > deadline:
                    sys.exit(f"nginx does not answer on {address} port {port}: {error}")
                time.sleep(1)
    EOF
  '';

  defaultsPerPort = filter (p: lib.length (filter (h: h.port == p && h.default) hosts) > 1) ports;
in
{
  imports = [ ./firewall.nix ];

  options.services.nginx = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether nginx serves {option}`services.nginx.virtualHosts` (Debian's `nginx.service`,
        started with multi-user.target; worker processes run as `www-data`).
      '';
    };

    virtualHosts = mkOption {
      type = types.attrsOf (types.submodule virtualHostOptions);
      default = { };
      example = lib.literalExpression ''
        {
          "example.com" = {
            default = true;
            root = "/var/www/example";
            locations."/".tryFiles = "$uri $uri/ =404";
          };
          "api.example.com".locations."/".proxyPass = "http://127.0.0.1:8080";
        }
      '';
      description = "Virtual hosts (`server` blocks), by name (the default `server_name`).";
    };

    appendHttpConfig = mkOption {
      type = types.lines;
      default = "";
      example = "client_max_body_size 10m;\nlimit_req_zone $binary_remote_addr zone=one:10m rate=5r/s;\n";
      description = "Directives added to the `http` block, before the virtual hosts.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Whether the virtual hosts' ports are opened in {option}`networking.firewall`.";
    };

    healthCheck = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether the health check `nginx` ({option}`health.checks`) requires every virtual
        host's port to answer an HTTP request before the boot counts as good (a release whose
        nginx does not start is then rolled back).
      '';
    };
  };

  config = mkIf cfg.enable {
    environment.packages = [ pkgs.nginx ];

    environment.etc."nginx/nginx.conf".text = nginxConf;

    # What the postinst of nginx-common would have done: the log directory (root:adm) and log
    # files that only www-data and adm can read. /var/lib/nginx holds the temporary files of
    # request bodies and proxied responses (nginx makes its subdirectories).
    systemd.tmpfiles.rules = [
      "d /var/log/nginx 0755 root adm -"
      "f /var/log/nginx/access.log 0640 www-data adm -"
      "f /var/log/nginx/error.log 0640 www-data adm -"
      "d /var/lib/nginx 0755 root root -"
    ];

    systemd.targets.multi-user.wants = [ "nginx.service" ];

    health.checks.nginx = mkIf (cfg.healthCheck && hosts != [ ]) {
      description = "nginx answers on its ports";
      command = healthScript;
    };
    # A `command` check is not ordered after anything: knock only once nginx has started.
    systemd.services.sonix-health-nginx = mkIf (cfg.healthCheck && hosts != [ ]) {
      after = [ "nginx.service" ];
      wants = [ "nginx.service" ];
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall ports;
    networking.firewall.listeners = map (p: { service = "services.nginx"; port = p; }) ports;

    assertions = map (p: {
      assertion = false;
      message = "services.nginx: more than one virtual host on port ${toString p} sets `default = true` (${concatStringsSep ", " (map (h: h.name) (filter (h: h.port == p && h.default) hosts))}); keep one.";
    }) defaultsPerPort
    ++ concatMap (h: concatMap (m:
      optional (h.locations.${m}.root != null && h.locations.${m}.alias != null) {
        assertion = false;
        message = "services.nginx.virtualHosts.${lib.escapeNixIdentifier h.name}.locations.\"${m}\" sets both `root` and `alias`; keep one.";
      }) (lib.attrNames h.locations)) hosts;

    warnings = optional (hosts == [ ]) "services.nginx is enabled without virtualHosts: nginx starts but listens on no port.";
  };
}
