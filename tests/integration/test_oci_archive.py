"""The container pieces of tests/vm/configs/containers-test.nix checked with trixie's own podman,
without a VM: its Quadlet generator turns the generated .container/.image files into the units
the docs describe, and `podman image pull oci-archive:` loads the archive that oci.images
builds under the name the .image unit's ImageTag says. podman runs from the configuration's
package tree (bubblewrap, the tree as /, vfs storage in a temporary directory); running a
container needs cgroup v2 and a network, which the VM test does (tests/vm/test_containers.py).
"""

from __future__ import annotations

import json
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
CONFIG = ROOT / "tests/vm/configs/containers-test.nix"
REAL_ROOT = os.geteuid() == 0
PODMAN = ["podman", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
          "--events-backend", "none"]


def build(attr: str) -> Path:
    result = subprocess.run(
        ["nix-build", "--no-out-link", "-E",
         f"(import {ROOT}/eval-config.nix {{ modules = [ {CONFIG} ];"
         f" pkgs = import {ROOT}/pkgs {{ }}; }}).config.system.build.{attr}"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.split()[-1])


@pytest.fixture(scope="module")
def tree() -> Path:
    """The configuration's package tree (podman, its helpers, python3, ...)."""
    env = {**os.environ, "SONIX_ROOT": str(ROOT)}
    fetched = subprocess.run([sys.executable, "-m", "sonix", "fetch", "--set", "services"],
                             capture_output=True, text=True, env=env, check=False)
    assert fetched.returncode == 0, fetched.stderr
    return build("base")


@pytest.fixture(scope="module")
def archive() -> Path:
    return build("ociImages.web") / "web.tar"


@pytest.fixture(scope="module")
def files() -> dict[str, Any]:
    expr = (
        f"(import {ROOT}/eval-config.nix {{ modules = [ {CONFIG} ];"
        f" pkgs = import {FAKE_PKGS}; }}).checked.system.buildManifest.usrFiles"
    )
    result: dict[str, Any] = nix.eval_expr_json(expr)
    return result


def sandbox(tree: Path, *argv: str, binds: dict[str, Path] | None = None,
            rw: dict[str, Path] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = ["bwrap", "--ro-bind", str(tree), "/", "--dev", "/dev", "--proc", "/proc",
               "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var",
               "--unshare-net", "--die-with-parent", "--clearenv",
               "--setenv", "PATH", "/usr/sbin:/usr/bin",
               "--setenv", "PODMAN_IGNORE_CGROUPSV1_WARNING", "1"]
    if not REAL_ROOT:
        command += ["--unshare-user", "--uid", "0", "--gid", "0"]
    for key, value in (env or {}).items():
        command += ["--setenv", key, value]
    for target, source in (binds or {}).items():
        command += ["--ro-bind", str(source), target]
    for target, source in (rw or {}).items():
        command += ["--bind", str(source), target]
    return subprocess.run([*command, *argv], capture_output=True, text=True, check=False,
                          timeout=600)


def test_quadlet_generator_makes_the_documented_units(
    tree: Path, files: dict[str, Any], tmp_path: Path,
) -> None:
    units = tmp_path / "quadlet"
    units.mkdir()
    for path, entry in files.items():
        if path.startswith("share/containers/systemd/"):
            (units / Path(path).name).write_text(entry["value"])
    result = sandbox(tree, "/usr/lib/systemd/system-generators/podman-system-generator",
                     "-dryrun", binds={"/tmp/quadlet": units},
                     env={"QUADLET_UNIT_DIRS": "/tmp/quadlet"})
    assert result.returncode == 0, result.stderr
    generated = result.stdout
    web = generated.split("---web.service---", 1)[1].split("---", 1)[0]
    assert "Requires=web-image.service\nAfter=web-image.service\n" in web
    assert "--publish 8080:8080" in web
    assert web.rstrip().endswith("localhost/sonix/web:latest")
    image = generated.split("---web-image.service---", 1)[1].split("---", 1)[0]
    assert ("ExecStart=/usr/bin/podman image pull oci-archive:/usr/share/sonix/oci/web.tar"
            in image)
    assert "Type=oneshot" in image and "RemainAfterExit=yes" in image
    registry = generated.split("---registry.service---", 1)[1].split("---", 1)[0]
    assert "docker.io/library/busybox:1.37 sleep infinity" in registry
    # No [Install]: nothing for the generator to link.
    assert "WantedBy" not in generated


def test_podman_loads_the_archive_under_its_name(
    tree: Path, archive: Path, tmp_path: Path,
) -> None:
    storage, run, vartmp = tmp_path / "storage", tmp_path / "run", tmp_path / "vartmp"
    for directory in (storage, run, vartmp):
        directory.mkdir()

    def podman(*args: str) -> str:
        result = sandbox(tree, *PODMAN, *args, binds={"/tmp/web.tar": archive},
                         rw={"/var/lib/containers": storage, "/run": run, "/var/tmp": vartmp})
        assert result.returncode == 0, result.stderr
        return result.stdout

    podman("image", "pull", "oci-archive:/tmp/web.tar")
    [image] = json.loads(podman("image", "inspect", "localhost/sonix/web:latest"))
    assert image["RepoTags"] == ["localhost/sonix/web:latest"]
    assert image["Config"]["Entrypoint"] == ["/usr/bin/python3", "-m", "http.server"]
    assert image["Config"]["Cmd"] == ["8080", "--directory", "/srv"]
    assert (image["Os"], image["Architecture"]) == ("linux", "amd64")
    assert len(image["RootFS"]["Layers"]) == 1
    # What every boot does again: still one image.
    podman("image", "pull", "oci-archive:/tmp/web.tar")
    assert len(podman("images", "-q").split()) == 1
