"""The service modules of issue 7 (openssh, firewall, resolved, timesyncd, journald forwarding
and upload, nginx): small configurations evaluated through eval-config.nix with the fake `pkgs`
of test_core_modules, checked for the files they put into /usr, the units they enable, the
firewall rules they open and their errors.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from test_core_modules import error_of, evaluate, link, package_name, text, unit_texts, usr

from sonix import paths

MODULES = paths.source_root() / "modules/services"
SERVICES_TEST = paths.source_root() / "tests/vm/configs/services-test.nix"


def config(*modules: str, body: str) -> str:
    """A configuration that imports modules/services/<name>.nix and sets `body`."""
    imports = " ".join(str(MODULES / f"{name}.nix") for name in modules)
    return f"{{ ... }}: {{ imports = [ {imports} ]; {body} }}"


def packages(module: str) -> list[str]:
    return [package_name(p) for p in evaluate(module, "environment.packages")]


def warnings(module: str) -> list[str]:
    result: list[str] = evaluate(module, "warnings")
    return result


def wants(files: dict[str, Any], unit: str) -> list[str]:
    """The units that `unit` wants (its .wants/ links)."""
    prefix = f"lib/systemd/system/{unit}.wants/"
    return sorted(path.removeprefix(prefix) for path in files if path.startswith(prefix))


def ruleset(files: dict[str, Any]) -> str:
    return text(files, "lib/sonix/firewall.nft")


def allow_chain(files: dict[str, Any]) -> list[str]:
    """The rules of the input-allow chain, one per line, without indentation."""
    body = ruleset(files).split("chain input-allow {", 1)[1].split("\t}", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


# ---- openssh ----------------------------------------------------------------------------

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEox70tGSOfS9RQI alice@laptop"
SSH = config("openssh", body=f"""
  services.openssh.enable = true;
  users.users.alice = {{ isNormalUser = true; openssh.authorizedKeys.keys = [ "{SSH_KEY}" ]; }};
""")


@pytest.fixture(scope="module")
def ssh_files() -> dict[str, Any]:
    return usr(SSH)


def test_sshd_config_is_the_whole_file_in_the_factory_etc(ssh_files: dict[str, Any]) -> None:
    sshd = text(ssh_files, "share/factory/etc/ssh/sshd_config")
    lines = [line for line in sshd.splitlines() if line and not line.startswith("#")]
    # Drop-ins first (for most keywords sshd keeps the first value), as in Debian's file.
    assert lines[0] == "Include /etc/ssh/sshd_config.d/*.conf"
    for expected in (
        "Port 22",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthorizedKeysFile /etc/ssh/authorized_keys.d/%u .ssh/authorized_keys",
        "UsePAM yes",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ):
        assert expected in lines, expected
    etc = text(ssh_files, "lib/tmpfiles.d/00-sonix-etc.conf")
    assert "L+ /etc/ssh/sshd_config - - - - /usr/share/factory/etc/ssh/sshd_config" in etc
    # users.users.<name>.openssh.authorizedKeys.keys: where AuthorizedKeysFile looks first.
    assert text(ssh_files, "share/factory/etc/ssh/authorized_keys.d/alice") == SSH_KEY + "\n"


def test_sshd_is_enabled_with_host_keys_generated_first(ssh_files: dict[str, Any]) -> None:
    assert "ssh.service" in wants(ssh_files, "multi-user.target")
    assert "ssh.socket" not in wants(ssh_files, "sockets.target")
    assert wants(ssh_files, "ssh.service") == ["sonix-ssh-keygen.service"]
    # The packaged ssh.service is used as it is (RuntimeDirectory=sshd): no file, no drop-in.
    assert "lib/systemd/system/ssh.service" not in ssh_files
    assert not [p for p in ssh_files if p.startswith("lib/systemd/system/ssh.service.d/")]
    assert link(ssh_files, "lib/systemd/system/sshd.service") == "ssh.service"
    keygen = text(ssh_files, "lib/systemd/system/sonix-ssh-keygen.service")
    assert "Before=ssh.service\n" in keygen
    assert "ExecStart=/usr/bin/ssh-keygen -A\n" in keygen
    # Runs when any key is missing (triggering conditions), not only on the first boot.
    for key in ("rsa", "ecdsa", "ed25519"):
        assert f"ConditionPathExists=|!/etc/ssh/ssh_host_{key}_key\n" in keygen
    assert "ConditionFirstBoot" not in keygen
    assert "openssh-server" in packages(SSH)


def test_sshd_opens_its_ports_in_the_firewall(ssh_files: dict[str, Any]) -> None:
    assert "tcp dport 22 accept" in allow_chain(ssh_files)
    files = usr(config("openssh", body="""
      services.openssh = { enable = true; ports = [ 2222 22 ]; };
    """))
    sshd = text(files, "share/factory/etc/ssh/sshd_config")
    assert "Port 2222\nPort 22\n" in sshd
    assert "tcp dport { 22, 2222 } accept" in allow_chain(files)
    closed = usr(config("openssh", body="""
      services.openssh = { enable = true; openFirewall = false; };
    """))
    assert not [rule for rule in allow_chain(closed) if "dport 22" in rule]


def test_sshd_settings_and_extra_config() -> None:
    files = usr(config("openssh", body="""
      services.openssh = {
        enable = true;
        passwordAuthentication = true;
        kbdInteractiveAuthentication = true;
        permitRootLogin = "no";
        extraConfig = "Match Address 192.0.2.0/24\\n  X11Forwarding yes\\n";
      };
    """))
    sshd = text(files, "share/factory/etc/ssh/sshd_config")
    assert "PasswordAuthentication yes\n" in sshd
    assert "KbdInteractiveAuthentication yes\n" in sshd
    assert "PermitRootLogin no\n" in sshd
    # Match blocks end at the end of the file: extraConfig comes last.
    assert sshd.endswith("Match Address 192.0.2.0/24\n  X11Forwarding yes\n")


def test_sshd_without_any_way_in_warns() -> None:
    nobody = config("openssh", body="services.openssh.enable = true;")
    [warning] = [w for w in warnings(nobody) if w.startswith("services.openssh")]
    assert "authorizedKeys.keys" in warning
    assert not [w for w in warnings(SSH) if w.startswith("services.openssh")]
    with_passwords = config("openssh", body="""
      services.openssh = { enable = true; passwordAuthentication = true; };
    """)
    assert not [w for w in warnings(with_passwords) if w.startswith("services.openssh")]


@pytest.mark.parametrize("port", ["0", "65536"])
def test_sshd_port_out_of_range_is_a_type_error(port: str) -> None:
    message = error_of(config("openssh", body=f"""
      services.openssh = {{ enable = true; ports = [ {port} ]; }};
    """))
    assert "services.openssh.ports" in message
    assert "between 1 and 65535" in message


def test_sshd_bad_root_login_value_is_a_type_error() -> None:
    message = error_of(config("openssh", body="""
      services.openssh = { enable = true; permitRootLogin = "maybe"; };
    """))
    assert "services.openssh.permitRootLogin" in message
    assert "prohibit-password" in message


def test_sshd_disabled_writes_nothing() -> None:
    files = usr(config("openssh", body=""))
    assert "share/factory/etc/ssh/sshd_config" not in files
    assert "ssh.service" not in wants(files, "multi-user.target")
    # The firewall still comes with the module (on by default), with no port open.
    assert not [rule for rule in allow_chain(files) if "dport" in rule and "udp sport" not in rule]


# ---- firewall -----------------------------------------------------------------------------

FIREWALL = config("firewall", body="""
  networking.firewall = {
    allowedTCPPorts = [ 443 80 80 ];
    allowedUDPPorts = [ 53 ];
    allowedTCPPortRanges = [ { from = 8000; to = 8010; } ];
    allowedUDPPortRanges = [ { from = 60000; to = 61000; } ];
    interfaces.eth1.allowedTCPPorts = [ 5432 ];
    interfaces."wg*".allowedUDPPorts = [ 51820 ];
    extraInputRules = "ip saddr 192.0.2.0/24 tcp dport 9100 accept\\n";
  };
""")


@pytest.fixture(scope="module")
def firewall_files() -> dict[str, Any]:
    return usr(FIREWALL)


def test_firewall_default_deny_with_the_essentials() -> None:
    files = usr(config("firewall", body=""))
    rules = ruleset(files)
    assert rules.startswith("#!/usr/sbin/nft -f\n")
    # Only our table is replaced (other software's tables stay), in one transaction.
    assert "table inet sonix-firewall\ndelete table inet sonix-firewall\n" in rules
    assert "flush ruleset" not in rules
    assert "type filter hook input priority filter; policy drop;" in rules
    assert 'iifname "lo" accept' in rules
    assert "ct state vmap { invalid : drop, established : accept, related : accept, " in rules
    allow = allow_chain(files)
    icmpv6 = next(rule for rule in allow if rule.startswith("icmpv6 type"))
    for kind in ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert",
                 "packet-too-big", "echo-request"):
        assert kind in icmpv6
    assert "udp sport 67 udp dport 68 accept" in allow  # DHCPv4 replies
    assert "ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept" in allow  # DHCPv6
    assert not [rule for rule in allow if "tcp dport" in rule]
    assert 'log level info prefix "refused connection: "' in rules


def test_firewall_ports_ranges_and_interfaces(firewall_files: dict[str, Any]) -> None:
    allow = allow_chain(firewall_files)
    assert "tcp dport { 80, 443, 8000-8010 } accept" in allow
    assert "udp dport { 53, 60000-61000 } accept" in allow
    assert 'iifname "eth1" tcp dport 5432 accept' in allow
    assert 'iifname "wg*" udp dport 51820 accept' in allow
    # extraInputRules come last in the allow chain.
    assert allow[-1] == "ip saddr 192.0.2.0/24 tcp dport 9100 accept"


def test_firewall_unit_loads_before_the_network(firewall_files: dict[str, Any]) -> None:
    unit = text(firewall_files, "lib/systemd/system/firewall.service")
    assert "DefaultDependencies=false\n" in unit
    assert "Before=network-pre.target\nBefore=shutdown.target\n" in unit
    assert "ExecStart=/usr/sbin/nft -f /usr/lib/sonix/firewall.nft\n" in unit
    assert "ExecStop=/usr/sbin/nft delete table inet sonix-firewall\n" in unit
    assert "[Install]" not in unit
    assert "firewall.service" in wants(firewall_files, "sysinit.target")
    assert "network-pre.target" in wants(firewall_files, "firewall.service")
    # A ruleset that does not load fails the boot's health checks (and rolls the release back).
    assert "sonix-health-firewall.service" in [
        p.rsplit("/", 1)[1] for p in firewall_files
        if p.startswith("lib/systemd/system/boot-complete.target.requires/")
    ]
    assert "nftables" in packages(FIREWALL)


def test_firewall_options_for_ping_and_logging() -> None:
    files = usr(config("firewall", body="""
      networking.firewall = { allowPing = false; logRefusedConnections = false; };
    """))
    rules = ruleset(files)
    assert "echo-request" not in rules
    assert " log " not in rules


def test_firewall_disabled() -> None:
    files = usr(config("openssh", body="""
      services.openssh.enable = true;
      networking.firewall.enable = false;
    """))
    assert "lib/sonix/firewall.nft" not in files
    assert "firewall.service" not in wants(files, "sysinit.target")
    assert "lib/systemd/system/sonix-health-firewall.service" not in files


@pytest.mark.parametrize(
    "setting",
    [
        "allowedTCPPorts = [ 0 ];",
        "allowedUDPPorts = [ 70000 ];",
        "allowedTCPPortRanges = [ { from = 1; to = 65536; } ];",
        "interfaces.eth0.allowedTCPPorts = [ (-1) ];",
    ],
)
def test_firewall_port_out_of_range_is_a_type_error(setting: str) -> None:
    message = error_of(config("firewall", body=f"networking.firewall.{setting}"))
    assert "between 1 and 65535" in message
    assert "networking.firewall." in message


def test_firewall_backwards_range_is_refused() -> None:
    message = error_of(config("firewall", body="""
      networking.firewall.allowedTCPPortRanges = [ { from = 9000; to = 8000; } ];
    """))
    assert "the port range 9000-8000 ends before it starts" in message
    assert "{ from = 8000; to = 9000; }" in message


def test_two_services_on_one_port_are_refused() -> None:
    message = error_of(config("openssh", "nginx", body="""
      services.openssh = { enable = true; ports = [ 80 ]; };
      services.nginx = { enable = true; virtualHosts.web.port = 80; };
    """))
    assert "port 80/tcp is used by more than one service" in message
    assert "services.nginx and services.openssh" in message


# ---- resolved -----------------------------------------------------------------------------

RESOLVED = config("resolved", body="""
  services.resolved = {
    enable = true;
    dns = [ "192.0.2.53" "2001:db8::53" ];
    domains = [ "example.com" "~corp.example.com" ];
    dnssec = "allow-downgrade";
    extraConfig = "DNSOverTLS=opportunistic\\n";
  };
""")


def test_resolved_dropin_and_enablement() -> None:
    files = usr(RESOLVED)
    assert text(files, "lib/systemd/resolved.conf.d/50-sonix.conf") == (
        "[Resolve]\n"
        "DNS=192.0.2.53 2001:db8::53\n"
        "DNSSEC=allow-downgrade\n"
        "Domains=example.com ~corp.example.com\n"
        "FallbackDNS=\n"
        "LLMNR=false\n"
        "DNSOverTLS=opportunistic\n"
    )
    assert "systemd-resolved.service" in wants(files, "sysinit.target")
    assert link(files, "lib/systemd/system/dbus-org.freedesktop.resolve1.service") == (
        "systemd-resolved.service"
    )
    # The stub link replaces whatever /etc/resolv.conf is (the package's own line is `L!`).
    tmpfiles = text(files, "lib/tmpfiles.d/50-sonix.conf")
    assert "L+ /etc/resolv.conf - - - - ../run/systemd/resolve/stub-resolv.conf\n" in tmpfiles
    assert "systemd-resolved" in packages(RESOLVED)


def test_resolved_defaults_and_resolv_conf_modes() -> None:
    files = usr(config("resolved", body="""
      services.resolved = { enable = true; fallbackDns = null; resolvConf = "uplink"; };
    """))
    assert text(files, "lib/systemd/resolved.conf.d/50-sonix.conf") == (
        "[Resolve]\nDNSSEC=false\nLLMNR=false\n"
    )
    assert "../run/systemd/resolve/resolv.conf\n" in text(files, "lib/tmpfiles.d/50-sonix.conf")
    untouched = usr(config("resolved", body="""
      services.resolved = { enable = true; resolvConf = "none"; };
    """))
    assert "resolv.conf" not in untouched.get("lib/tmpfiles.d/50-sonix.conf", {}).get("value", "")
    assert "lib/systemd/resolved.conf.d/50-sonix.conf" not in usr(config("resolved", body=""))


def test_resolved_and_an_etc_resolv_conf_are_refused() -> None:
    message = error_of(config("resolved", body="""
      services.resolved.enable = true;
      environment.etc."resolv.conf".text = "nameserver 192.0.2.1\\n";
    """))
    assert "both want /etc/resolv.conf" in message
    assert 'set services.resolved.resolvConf = "none" to keep it' in message


def test_resolved_bad_dnssec_is_a_type_error() -> None:
    message = error_of(config("resolved", body="""
      services.resolved = { enable = true; dnssec = "sometimes"; };
    """))
    assert "services.resolved.dnssec" in message


# ---- timesyncd ----------------------------------------------------------------------------


def test_timesyncd_dropin_and_enablement() -> None:
    module = config("timesyncd", body="""
      services.timesyncd = {
        enable = true; servers = [ "ntp1.example.com" "192.0.2.123" ];
        extraConfig = "PollIntervalMaxSec=1024\\n";
      };
    """)
    files = usr(module)
    assert text(files, "lib/systemd/timesyncd.conf.d/50-sonix.conf") == (
        "[Time]\nNTP=ntp1.example.com 192.0.2.123\nPollIntervalMaxSec=1024\n"
    )
    assert "systemd-timesyncd.service" in wants(files, "sysinit.target")
    assert link(files, "lib/systemd/system/dbus-org.freedesktop.timesync1.service") == (
        "systemd-timesyncd.service"
    )
    assert "systemd-timesyncd" in packages(module)


def test_timesyncd_defaults_and_no_fallback() -> None:
    defaults = usr(config("timesyncd", body="services.timesyncd.enable = true;"))
    assert text(defaults, "lib/systemd/timesyncd.conf.d/50-sonix.conf") == "[Time]\n"
    none = usr(config("timesyncd", body="""
      services.timesyncd = { enable = true; fallbackServers = [ ]; };
    """))
    assert text(none, "lib/systemd/timesyncd.conf.d/50-sonix.conf") == "[Time]\nFallbackNTP=\n"


# ---- journald -----------------------------------------------------------------------------


def test_journald_forwarding_and_retention() -> None:
    files = usr("""{ ... }: {
      services.journald = {
        forwardToSyslog = true; forwardToKMsg = true; maxRetentionSec = "1month";
      };
    }""")
    assert text(files, "lib/systemd/journald.conf.d/50-sonix.conf") == (
        "[Journal]\n"
        "ForwardToConsole=false\n"
        "ForwardToKMsg=true\n"
        "ForwardToSyslog=true\n"
        "MaxRetentionSec=1month\n"
        "Storage=persistent\n"
    )
    # Debian's syslog.conf (ForwardToSyslog=yes) sorts after 50-sonix.conf: it is emptied.
    syslog = text(files, "lib/systemd/journald.conf.d/syslog.conf")
    assert not [line for line in syslog.splitlines() if line and not line.startswith("#")]


def test_journal_upload() -> None:
    module = """{ ... }: {
      services.journald.upload = {
        enable = true; url = "https://logs.example.com:19532";
        extraConfig = "TrustedCertificateFile=/etc/ssl/certs/logs-ca.pem\\n";
      };
    }"""
    files = usr(module)
    assert text(files, "lib/systemd/journal-upload.conf.d/50-sonix.conf") == (
        "[Upload]\nURL=https://logs.example.com:19532\n"
        "TrustedCertificateFile=/etc/ssl/certs/logs-ca.pem\n"
    )
    assert "systemd-journal-upload.service" in wants(files, "multi-user.target")
    # A server that is down at boot must not stop the uploads for good (start limit).
    assert text(files, "lib/systemd/system/systemd-journal-upload.service.d/overrides.conf") == (
        "[Unit]\nStartLimitIntervalSec=0\n"
    )
    assert "systemd-journal-remote" in packages(module)
    off = usr()
    assert "lib/systemd/journal-upload.conf.d/50-sonix.conf" not in off
    assert "systemd-journal-upload.service" not in wants(off, "multi-user.target")


def test_journal_upload_needs_an_http_url() -> None:
    message = error_of("""{ ... }: {
      services.journald.upload = { enable = true; url = "logs.example.com"; };
    }""")
    assert "services.journald.upload.url" in message


# ---- nginx --------------------------------------------------------------------------------

NGINX = config("nginx", body="""
  services.nginx = {
    enable = true;
    virtualHosts."example.com" = {
      default = true;
      serverAliases = [ "www.example.com" ];
      root = "/var/www/example";
      locations."/".tryFiles = "$uri $uri/ =404";
      locations."/api/" = {
        proxyPass = "http://127.0.0.1:3000"; extraConfig = "proxy_buffering off;\\n";
      };
    };
    virtualHosts.internal = { port = 8080; listenAddresses = [ "192.0.2.10" ]; };
  };
""")


@pytest.fixture(scope="module")
def nginx_files() -> dict[str, Any]:
    return usr(NGINX)


def test_nginx_conf(nginx_files: dict[str, Any]) -> None:
    conf = text(nginx_files, "share/factory/etc/nginx/nginx.conf")
    assert "user www-data;\n" in conf
    assert "\tinclude /etc/nginx/mime.types;\n" in conf
    assert (
        "\tserver {\n"
        "\t\tlisten 0.0.0.0:80 default_server;\n"
        "\t\tlisten [::]:80 default_server;\n"
        "\t\tserver_name example.com www.example.com;\n"
        "\t\troot /var/www/example;\n"
        "\n"
        "\t\tlocation / {\n"
        "\t\t\ttry_files $uri $uri/ =404;\n"
        "\t\t}\n"
        "\n"
        "\t\tlocation /api/ {\n"
        "\t\t\tproxy_pass http://127.0.0.1:3000;\n"
        "\t\t\tproxy_buffering off;\n"
        "\t\t}\n"
        "\t}\n"
    ) in conf
    assert "\t\tlisten 192.0.2.10:8080;\n\t\tserver_name internal;\n" in conf
    # Braces balance: the generated file is one http block of server blocks.
    assert conf.count("{") == conf.count("}")
    etc = text(nginx_files, "lib/tmpfiles.d/00-sonix-etc.conf")
    assert "L+ /etc/nginx/nginx.conf - - - - /usr/share/factory/etc/nginx/nginx.conf" in etc


def test_nginx_does_what_the_postinst_did(nginx_files: dict[str, Any]) -> None:
    tmpfiles = text(nginx_files, "lib/tmpfiles.d/50-sonix.conf").splitlines()
    assert "d /var/log/nginx 0755 root adm -" in tmpfiles
    assert "f /var/log/nginx/access.log 0640 www-data adm -" in tmpfiles
    assert "f /var/log/nginx/error.log 0640 www-data adm -" in tmpfiles
    assert "d /var/lib/nginx 0755 root root -" in tmpfiles
    assert "nginx.service" in wants(nginx_files, "multi-user.target")
    assert "lib/systemd/system/nginx.service" not in nginx_files  # Debian's unit as it is
    assert "nginx" in packages(NGINX)


def test_nginx_health_check_knocks_on_every_port(nginx_files: dict[str, Any]) -> None:
    assert link(
        nginx_files, "lib/systemd/system/boot-complete.target.requires/sonix-health-nginx.service"
    ) == "../sonix-health-nginx.service"
    check = text(nginx_files, "lib/systemd/system/sonix-health-nginx.service")
    assert "After=nginx.service\n" in check
    assert wants(nginx_files, "sonix-health-nginx.service") == ["nginx.service"]
    script = text(nginx_files, "lib/sonix/scripts/sonix-health-nginx-start")
    probes = re.search(r"^probes = (.*)$", script, re.MULTILINE)
    assert probes is not None
    # A wildcard address is reached through loopback; a specific one directly.
    assert probes[1] == '[["127.0.0.1",80,"example.com"],["192.0.2.10",8080,"internal"]]'
    no_check = usr(config("nginx", body="""
      services.nginx = { enable = true; healthCheck = false; virtualHosts.a = { }; };
    """))
    assert "lib/systemd/system/sonix-health-nginx.service" not in no_check


def test_nginx_opens_its_ports(nginx_files: dict[str, Any]) -> None:
    assert "tcp dport { 80, 8080 } accept" in allow_chain(nginx_files)
    closed = usr(config("nginx", body="""
      services.nginx = { enable = true; openFirewall = false; virtualHosts.a = { }; };
    """))
    assert not [rule for rule in allow_chain(closed) if "tcp dport" in rule]


def test_nginx_errors() -> None:
    two_defaults = error_of(config("nginx", body="""
      services.nginx = {
        enable = true;
        virtualHosts.a.default = true;
        virtualHosts.b.default = true;
      };
    """))
    assert "more than one virtual host on port 80 sets `default = true` (a, b)" in two_defaults
    root_and_alias = error_of(config("nginx", body="""
      services.nginx = {
        enable = true;
        virtualHosts.a.locations."/x/" = { root = "/srv"; alias = "/srv/x/"; };
      };
    """))
    assert 'virtualHosts.a.locations."/x/" sets both `root` and `alias`' in root_and_alias
    bad_port = error_of(config("nginx", body="""
      services.nginx = { enable = true; virtualHosts.a.port = 0; };
    """))
    assert "between 1 and 65535" in bad_port
    relative = error_of(config("nginx", body="""
      services.nginx = { enable = true; virtualHosts.a.root = "www"; };
    """))
    assert "services.nginx.virtualHosts.a.root" in relative


# ---- all together: the VM test's machine ----------------------------------------------------


def test_services_test_machine_evaluates() -> None:
    files = usr(str(SERVICES_TEST))
    assert {"ssh.service", "nginx.service", "systemd-journal-upload.service"} <= set(
        wants(files, "multi-user.target")
    )
    assert {"firewall.service", "systemd-resolved.service", "systemd-timesyncd.service"} <= set(
        wants(files, "sysinit.target")
    )
    assert "tcp dport { 22, 80 } accept" in allow_chain(files)
    assert "ssh/authorized_keys.d/admin" in " ".join(files)
    for path, value in unit_texts(files).items():
        assert "[Install]" not in value, path
