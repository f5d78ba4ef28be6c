"""The service modules (issue 7) on one VM (configs/services-test.nix), sharing one boot:

1. every service is up and nothing failed; boot-complete.target is reached, so the health
   checks (firewall, nginx) passed;
2. SSH from the host through a QEMU port forward: the host key is the one generated on first
   boot; the admin logs in with the key from users.users.admin.openssh.authorizedKeys.keys and
   with a key put into ~/.ssh/authorized_keys (as provisioning does); passwords are refused;
3. nginx answers on port 80 from the host, serves the configured root, logs as www-data;
4. the firewall: a server on port 8081 that no module opened answers inside the guest but not
   through the forward, and the refusal is logged; with firewall.service stopped it answers;
5. resolved: /etc/resolv.conf is the stub, the configured server and domain are in effect,
   and the machine's own name resolves through the stub;
6. timesyncd runs with the configured server and no fallback;
7. journald: the drop-in's settings are what journald reads, a warning reaches the kernel log
   (ForwardToKMsg), and systemd-journal-upload delivers entries to a journal-remote sink.

The VM's user network is restricted: only the host's forwards reach it, nothing else is
contacted.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from forwards import http_get

from sonix.build import BuildResult
from sonix.testing.driver import Driver
from sonix.testing.etcd import free_ports
from sonix.testing.machine import Machine
from sonix.vm import qemu

pytestmark = pytest.mark.vm

CONFIG = Path(__file__).parent / "configs" / "services-test.nix"
KEY = Path(__file__).parent / "fixtures" / "ssh" / "snakeoil_ed25519"
BOOT_TIMEOUT = 600  # TCG on a busy two-core host
GiB = 1 << 30


@dataclass(frozen=True)
class Ports:
    """Host ports forwarded to the guest's sshd, nginx, and a port no module opened."""

    ssh: int
    http: int
    closed: int


@pytest.fixture(scope="module")
def system(build_config: Callable[[Path], BuildResult]) -> BuildResult:
    return build_config(CONFIG)


@pytest.fixture(scope="module")
def ports() -> Ports:
    ssh, http, closed = free_ports(3)
    return Ports(ssh=ssh, http=http, closed=closed)


@pytest.fixture(scope="module")
def machine(system: BuildResult, driver: Driver, ports: Ports) -> Machine:
    if shutil.which("ssh") is None:
        pytest.skip("the ssh client is not installed (Debian: openssh-client)")
    m = driver.machine(
        "services", image=system.image, disk_size=4 * GiB, memory_mib=1536,
        port_forwards=(qemu.PortForward(ports.ssh, 22), qemu.PortForward(ports.http, 80),
                       qemu.PortForward(ports.closed, 8081)),
    )
    m.start()
    m.wait_for_unit("multi-user.target", timeout=BOOT_TIMEOUT)
    return m


@pytest.fixture(scope="module")
def ssh_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client side: the test key (ssh wants it 0600) and an empty known_hosts."""
    directory = tmp_path_factory.mktemp("ssh")
    shutil.copyfile(KEY, directory / "id_ed25519")
    (directory / "id_ed25519").chmod(0o600)
    (directory / "known_hosts").write_text("")
    return directory


def ssh(
    ssh_dir: Path, ports: Ports, user: str, *, key: Path | None = None,
    options: tuple[str, ...] = (), command: str = "id -un",
) -> subprocess.CompletedProcess[str]:
    """The host's ssh client against the guest's sshd, the host key checked strictly."""
    argv = [
        "ssh", "-F", "/dev/null", "-p", str(ports.ssh),
        "-i", str(key or ssh_dir / "id_ed25519"),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlgorithms=ssh-ed25519",
        "-o", "ConnectTimeout=60", *options, f"{user}@127.0.0.1", command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


# ---- 1. everything up -----------------------------------------------------------------------


def test_services_are_up_and_the_boot_is_good(machine: Machine) -> None:
    for unit in ("firewall.service", "ssh.service", "nginx.service",
                 "systemd-resolved.service", "systemd-timesyncd.service",
                 "systemd-journal-upload.service"):
        machine.wait_for_unit(unit, timeout=BOOT_TIMEOUT)
    # The health checks (firewall loaded, nginx answers) are what boot-complete.target requires.
    machine.wait_for_unit("boot-complete.target", timeout=BOOT_TIMEOUT)
    for check in ("sonix-health-firewall.service", "sonix-health-nginx.service"):
        assert machine.get_unit_property(check, "Result") == "success"
    journal = machine.succeed("journalctl -b -u sonix-health-nginx.service --no-pager")
    assert "nginx answers on 127.0.0.1 port 80 (test): 200" in journal
    state = machine.succeed("systemctl is-system-running --wait || true", timeout=BOOT_TIMEOUT)
    failed = machine.succeed("systemctl --failed --no-legend --plain")
    assert state.strip() == "running", f"system state {state.strip()}; failed units:\n{failed}"


# ---- 2. ssh ---------------------------------------------------------------------------------


def test_host_keys_were_generated_before_sshd(
    machine: Machine, ssh_dir: Path, ports: Ports
) -> None:
    machine.succeed("test -s /etc/ssh/ssh_host_ed25519_key -a -s /etc/ssh/ssh_host_rsa_key")
    assert machine.succeed("stat -c %a /etc/ssh/ssh_host_ed25519_key").strip() == "600"
    assert machine.get_unit_property("sonix-ssh-keygen.service", "Result") == "success"
    # Only when a key is missing: started again, the unit's condition is false.
    machine.succeed("systemctl restart sonix-ssh-keygen.service")
    assert machine.get_unit_property("sonix-ssh-keygen.service", "ConditionResult") == "no"
    # The key the client will insist on (StrictHostKeyChecking) is the generated one.
    public = machine.succeed("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{ports.ssh} {public[0]} {public[1]}\n")


def test_key_login_from_the_configuration(machine: Machine, ssh_dir: Path, ports: Ports) -> None:
    machine.wait_for_open_port(22)
    result = ssh(ssh_dir, ports, "admin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "admin"
    journal = machine.succeed("journalctl -b -u ssh.service --no-pager")
    assert "Accepted publickey for admin" in journal


def test_key_login_from_the_home_directory(
    machine: Machine, ssh_dir: Path, ports: Ports
) -> None:
    key = ssh_dir / "user_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "own key",
                    "-f", str(key)], check=True)
    denied = ssh(ssh_dir, ports, "admin", key=key)
    assert denied.returncode == 255 and "Permission denied" in denied.stderr
    # Where provisioning (and the user) put keys: ~/.ssh/authorized_keys.
    public = (ssh_dir / "user_key.pub").read_text().strip()
    machine.succeed(
        "install -d -m 0700 -o admin -g users /home/admin/.ssh",
        f"echo '{public}' > /home/admin/.ssh/authorized_keys",
        "chown admin:users /home/admin/.ssh/authorized_keys && "
        "chmod 0600 /home/admin/.ssh/authorized_keys",
    )
    result = ssh(ssh_dir, ports, "admin", key=key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "admin"


def test_password_login_is_refused(machine: Machine, ssh_dir: Path, ports: Ports) -> None:
    # The admin has a password ("sonix", examples/minimal.nix): sshd does not even offer it.
    result = ssh(ssh_dir, ports, "admin", options=(
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password,keyboard-interactive",
    ))
    assert result.returncode == 255
    assert "Permission denied (publickey)." in result.stderr
    effective = machine.succeed("sshd -T | grep -Ei '^(passwordauthentication|kbdinteractive)'")
    assert sorted(effective.strip().splitlines()) == [
        "kbdinteractiveauthentication no", "passwordauthentication no",
    ]


def test_root_cannot_log_in_without_a_key(machine: Machine, ssh_dir: Path, ports: Ports) -> None:
    result = ssh(ssh_dir, ports, "root")
    assert result.returncode == 255 and "Permission denied" in result.stderr


# ---- 3. nginx -------------------------------------------------------------------------------


def test_nginx_answers_from_the_host(machine: Machine, ports: Ports) -> None:
    machine.wait_for_open_port(80)
    assert http_get(ports.http) == (200, "hello from nginx\n")
    assert http_get(ports.http, "/missing")[0] == 404
    assert machine.succeed("readlink /etc/nginx/nginx.conf").strip() == (
        "/usr/share/factory/etc/nginx/nginx.conf"
    )
    # What the missing postinst would have done: log files only www-data and adm read.
    log = machine.succeed("stat -c '%a %U:%G' /var/log/nginx/access.log").strip()
    assert log == "640 www-data:adm"
    machine.wait_until_succeeds("grep -q 'GET /missing' /var/log/nginx/access.log")
    workers = machine.succeed("ps -o user= -C nginx | sort | uniq")
    assert "www-data" in workers.split()


# ---- 4. firewall ----------------------------------------------------------------------------


def test_firewall_drops_a_port_that_no_service_opened(machine: Machine, ports: Ports) -> None:
    ruleset = machine.succeed("nft list table inet sonix-firewall")
    assert "tcp dport { 22, 80 } accept" in ruleset
    machine.succeed(
        "systemd-run --unit=test-http --property=WorkingDirectory=/usr/share/sonix-test/www "
        "/usr/bin/python3 -m http.server 8081 --bind 0.0.0.0"
    )
    machine.wait_for_open_port(8081)
    # Inside the guest (loopback is always allowed) the server answers ...
    machine.succeed("python3 -c 'import urllib.request; "
                    "urllib.request.urlopen(\"http://127.0.0.1:8081/\", timeout=10)'")
    # ... from outside its SYNs are dropped: QEMU accepts the host's connection, cannot
    # reach the guest's port, and the client gets no HTTP answer (a reset or the timeout).
    with pytest.raises((OSError, http.client.HTTPException)):
        http_get(ports.closed, timeout=20)
    machine.wait_until_succeeds(
        "journalctl -k -b --no-pager | grep -q 'refused connection: .*DPT=8081'"
    )
    # The control: without the firewall the same forward reaches the server.
    machine.succeed("systemctl stop firewall.service")
    try:
        assert http_get(ports.closed, "/index.html")[0] == 200
    finally:
        machine.succeed("systemctl start firewall.service")
    with pytest.raises((OSError, http.client.HTTPException)):
        http_get(ports.closed, timeout=20)
    machine.succeed("systemctl stop test-http.service")


# ---- 5. resolved ----------------------------------------------------------------------------


def test_resolved_is_the_resolver(machine: Machine) -> None:
    assert machine.succeed("readlink /etc/resolv.conf").strip() == (
        "../run/systemd/resolve/stub-resolv.conf"
    )
    assert "nameserver 127.0.0.53" in machine.succeed("cat /etc/resolv.conf")
    assert "Global: 192.0.2.53" in machine.succeed("resolvectl dns")
    assert "Global: sonix.test" in machine.succeed("resolvectl domain")
    settings = machine.succeed("systemd-analyze cat-config systemd/resolved.conf")
    assert "LLMNR=false" in settings and "FallbackDNS=\n" in settings
    # The machine's own name: through D-Bus, and through glibc and the stub on 127.0.0.53
    # (the trailing dot keeps glibc from trying the search domain's unreachable server first).
    machine.succeed("resolvectl query minimal")
    assert machine.succeed("getent ahostsv4 minimal.").strip()


# ---- 6. timesyncd ---------------------------------------------------------------------------


def test_timesyncd_uses_the_configured_server(machine: Machine) -> None:
    machine.wait_for_unit("systemd-timesyncd.service")
    show = "timedatectl show-timesync --value -p"
    assert machine.succeed(f"{show} SystemNTPServers").strip() == "10.0.2.2"
    assert machine.succeed(f"{show} FallbackNTPServers").strip() == ""


# ---- 7. journald ----------------------------------------------------------------------------


def test_journald_settings_are_in_effect(machine: Machine) -> None:
    settings = machine.succeed("systemd-analyze cat-config systemd/journald.conf")
    for line in ("MaxRetentionSec=1month", "ForwardToKMsg=true", "ForwardToSyslog=false",
                 "MaxLevelKMsg=warning", "SystemMaxUse=100M"):
        assert f"\n{line}\n" in settings, line
    # Debian's syslog.conf (ForwardToSyslog=yes) is replaced; comments may still name it.
    assert not re.search(r"^ForwardToSyslog=yes$", settings, re.MULTILINE)
    marker = f"kmsg-{uuid.uuid4().hex}"
    machine.succeed(f"echo {marker} | systemd-cat -t sonix-test -p warning")
    machine.wait_until_succeeds(f"dmesg | grep -q {marker}")
    quiet = f"kmsg-info-{uuid.uuid4().hex}"
    machine.succeed(f"echo {quiet} | systemd-cat -t sonix-test -p info")
    machine.wait_until_succeeds(f"journalctl -b -t sonix-test --no-pager | grep -q {quiet}")
    machine.fail(f"dmesg | grep -q {quiet}")  # below MaxLevelKMsg


def test_journal_upload_reaches_the_sink(machine: Machine) -> None:
    machine.wait_for_unit("journal-sink.service")
    marker = f"upload-{uuid.uuid4().hex}"
    machine.succeed(f"echo {marker} | systemd-cat -t sonix-test")
    machine.wait_until_succeeds(
        f"journalctl -D /var/lib/journal-sink -t sonix-test --no-pager | grep -q {marker}",
        timeout=300,
    )
    assert "URL=http://127.0.0.1:19532" in machine.succeed(
        "systemd-analyze cat-config systemd/journal-upload.conf"
    )
