"""The configuration files that the service modules generate, checked by the Debian programs
that read them, without a VM: the firewall ruleset by nft (loaded into a fresh network
namespace), sshd_config by `sshd -t`/`-T`, nginx.conf by `nginx -t`, and nginx with the health
check script of services.nginx actually answering. The programs run from a root tree of the
locked packages (bubblewrap, the tree as /), on the files of tests/vm/configs/services-test.nix.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sonix import nix, paths

pytestmark = pytest.mark.network  # the packages are fetched from the Debian mirror if missing

ROOT = paths.source_root()
FAKE_PKGS = ROOT / "tests/unit/fixtures/core-modules/fake-pkgs.nix"
CONFIG = ROOT / "tests/vm/configs/services-test.nix"
PACKAGES = ["nftables", "openssh-server", "nginx", "bash", "python3"]
# As root on the host the programs run as root in the sandbox; otherwise as uid 0 of a user
# namespace, where only that one uid exists (nginx cannot chown to www-data there).
REAL_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def tree() -> Path:
    """A root tree of PACKAGES (the programs and what they need at run time)."""
    env = {**os.environ, "SONIX_ROOT": str(ROOT)}
    fetched = subprocess.run([sys.executable, "-m", "sonix", "fetch", "--set", "services"],
                             capture_output=True, text=True, env=env, check=False)
    assert fetched.returncode == 0, fetched.stderr
    names = " ".join(f'"{name}"' for name in PACKAGES)
    result = subprocess.run(
        ["nix-build", "--no-out-link", "-E",
         f"(import {ROOT}/pkgs {{ }}).usrTree {{ packages = [ {names} ];"
         ' name = "sonix-service-checks"; }'],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.split()[-1])


@pytest.fixture(scope="module")
def files() -> dict[str, Any]:
    expr = (
        f"(import {ROOT}/eval-config.nix {{ modules = [ {CONFIG} ];"
        f" pkgs = import {FAKE_PKGS}; }}).checked.system.buildManifest.usrFiles"
    )
    result: dict[str, Any] = nix.eval_expr_json(expr)
    return result


def write(tmp_path: Path, files: dict[str, Any], path: str) -> Path:
    out = tmp_path / Path(path).name
    out.write_text(files[path]["value"])
    return out


def sandbox(tree: Path, *argv: str, binds: dict[str, Path] | None = None,
            dirs: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run argv with the tree as /, in a new network namespace (only loopback)."""
    command = ["bwrap", "--ro-bind", str(tree), "/", "--dev", "/dev", "--proc", "/proc",
               "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var",
               "--unshare-net", "--die-with-parent", "--clearenv",
               "--setenv", "PATH", "/usr/sbin:/usr/bin"]
    if not REAL_ROOT:
        command += ["--unshare-user", "--uid", "0", "--gid", "0"]
    for directory in dirs:
        command += ["--dir", directory]
    for target, source in (binds or {}).items():
        command += ["--ro-bind", str(source), target]
    return subprocess.run([*command, *argv], capture_output=True, text=True, check=False)


def test_firewall_ruleset_loads_and_replaces_itself(
    tree: Path, files: dict[str, Any], tmp_path: Path
) -> None:
    rules = write(tmp_path, files, "lib/sonix/firewall.nft")
    nft = "/usr/sbin/nft"
    # Loading twice works (the table is replaced, not added to); stopping removes only it.
    result = sandbox(tree, "/usr/bin/bash", "-ec", f"""
        {nft} add table inet other
        {nft} -f /tmp/firewall.nft
        {nft} -f /tmp/firewall.nft
        {nft} list chain inet sonix-firewall input-allow
        {nft} delete table inet sonix-firewall
        {nft} list tables
    """, binds={"/tmp/firewall.nft": rules})
    assert result.returncode == 0, result.stderr
    assert "tcp dport { 22, 80 } accept" in result.stdout
    assert result.stdout.rstrip().endswith("table inet other")
    assert "sonix-firewall" not in result.stdout.rsplit("}", 1)[1]


def test_sshd_accepts_its_config(tree: Path, files: dict[str, Any], tmp_path: Path) -> None:
    config = write(tmp_path, files, "share/factory/etc/ssh/sshd_config")
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    binds = {"/tmp/sshd_config": config, "/tmp/host_key": key}
    checked = sandbox(tree, "/usr/sbin/sshd", "-t", "-f", "/tmp/sshd_config", "-h",
                      "/tmp/host_key", binds=binds, dirs=("/run/sshd",))
    assert checked.returncode == 0, checked.stderr
    effective = sandbox(tree, "/usr/sbin/sshd", "-T", "-f", "/tmp/sshd_config", "-h",
                        "/tmp/host_key", binds=binds, dirs=("/run/sshd",))
    assert effective.returncode == 0, effective.stderr
    settings = effective.stdout.splitlines()
    assert "passwordauthentication no" in settings
    assert "kbdinteractiveauthentication no" in settings
    assert "permitrootlogin without-password" in settings  # sshd's name for prohibit-password
    assert "authorizedkeysfile /etc/ssh/authorized_keys.d/%u .ssh/authorized_keys" in settings
    assert "port 22" in settings


def test_nginx_runs_its_config_and_passes_the_health_check(
    tree: Path, files: dict[str, Any], tmp_path: Path
) -> None:
    config = write(tmp_path, files, "share/factory/etc/nginx/nginx.conf")
    if not REAL_ROOT:
        # Workers cannot switch to www-data in a user namespace with one uid.
        config.write_text(config.read_text().replace("user www-data;", "user root root;"))
    health = write(tmp_path, files, "lib/sonix/scripts/sonix-health-nginx-start")
    result = sandbox(tree, "/usr/bin/bash", "-ec", """
        /usr/sbin/nginx -t -c /tmp/nginx.conf
        /usr/sbin/nginx -c /tmp/nginx.conf
        /usr/bin/bash /tmp/health
        /usr/sbin/nginx -c /tmp/nginx.conf -s quit
    """, binds={"/tmp/nginx.conf": config, "/tmp/health": health},
        dirs=("/var/log/nginx", "/var/lib/nginx"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "syntax is ok" in result.stderr
    # The document root is not in this tree: 404 is an answer, which is all the check asks.
    assert "nginx answers on 127.0.0.1 port 80 (test): 404" in result.stdout
