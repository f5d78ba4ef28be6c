"""Provisioning against a hostile machine: the corpus in tests/fixtures/provision/*.json.

Each case is data: an Ignition config (and, for every-boot attacks, the config of an earlier
boot and what a local user planted after it), metadata from the source, and the expected
outcome:
- "rejected": the config is invalid; the problem is reported at this JSON path;
- "refused": the config is valid but cannot be applied safely to this machine; the error
  matches this regex;
- "applied": the paths allowed to change (fnmatch globs) and what some of them must be.

Every case runs in a fresh root seeded as a machine where unprivileged users live: alice
(uid 1000) and bob (1001) own their homes, a directory in /srv, links in /tmp and /var/tmp that
point at /etc and at a directory outside the root. The whole tree (and the directory outside
it) is hashed before and after: type, mode, owner and contents or link target of every entry.
A rejected or refused case must leave both exactly as they were; an applied case may change
only its allowed paths, and never anything outside the root.

The file format is documented in tests/fixtures/provision/README.md.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sonix.agents import common, ignition, metadata, provision, rootdir

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/fixtures/provision"
ALICE, BOB = 1000, 1001
# Written by every applied config: the state and the attributes, and the directories above.
ALWAYS = ["/var/lib/sonix", "/var/lib/sonix/provision", "/var/lib/sonix/provision/*"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to other users: root")


def seed(root: Path, outside: Path) -> None:
    """A small sonix root with two unprivileged users and what they may have planted."""
    def put(path: str, text: str = "", mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chown(p, uid, gid)
        os.chmod(p, mode)

    def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        p = root / path.lstrip("/")
        p.mkdir(parents=True, exist_ok=True)
        os.chown(p, uid, gid)
        os.chmod(p, mode)

    def link(path: str, target: str, uid: int = 0) -> None:
        p = root / path.lstrip("/")
        p.symlink_to(target.replace("@OUTSIDE@", str(outside)))
        os.lchown(p, uid, uid)

    directory("/")
    put("/etc/passwd", "root:x:0:0:root:/root:/usr/bin/bash\n"
        "alice:x:1000:1000:Alice:/home/alice:/usr/bin/bash\n"
        "bob:x:1001:1001:Bob:/home/bob:/usr/bin/bash\n")
    put("/etc/group", "root:x:0:\nadm:x:4:\nsudo:x:27:\nshadow:x:42:\nusers:x:100:\n"
        "alice:x:1000:\nbob:x:1001:\n")
    put("/etc/shadow", "root:$6$root-hash:20000:0:99999:7:::\nalice:*:20000:0:99999:7:::\n"
        "bob:*:20000:0:99999:7:::\n", 0o640, 0, 42)
    put("/etc/gshadow", "root:*::\nadm:*::\nsudo:*::\nshadow:*::\nusers:*::\nalice:!::\n"
        "bob:!::\n", 0o640, 0, 42)
    put("/usr/share/factory/etc/hostname", "minimal\n")
    link("/etc/hostname", "../usr/share/factory/etc/hostname")
    put("/usr/lib/tmpfiles.d/00-sonix-etc.conf",
        "L+ /etc/hostname - - - - /usr/share/factory/etc/hostname\n"
        "C /etc/motd 0644 root root -\n")
    put("/etc/motd", "welcome\n")
    put("/etc/ssh/ssh_host_ed25519_key", "SECRET HOST KEY\n", 0o600)
    put("/etc/ssh/sshd_config", "PermitRootLogin no\n")
    put("/etc/skel/.profile", "# profile\n")
    directory("/etc/systemd/system")
    directory("/tmp", 0o1777)
    directory("/var/tmp", 0o1777)
    directory("/var/lib/app")
    link("/var/a", "/var/b")
    link("/var/b", "@OUTSIDE@")
    directory("/home")
    directory("/home/alice", 0o700, ALICE, ALICE)
    directory("/home/alice/.ssh", 0o700, ALICE, ALICE)
    put("/home/alice/.ssh/authorized_keys", "ssh-ed25519 AAAAold alice\n", 0o600, ALICE, ALICE)
    put("/home/alice/notes.txt", "my notes\n", 0o600, ALICE, ALICE)
    link("/home/alice/out", "@OUTSIDE@", ALICE)
    directory("/home/bob", 0o700, BOB, BOB)
    directory("/srv/shared", 0o755, ALICE, ALICE)
    link("/srv/shared/evil", "/etc", ALICE)
    link("/tmp/alice-etc", "/etc", ALICE)
    link("/var/tmp/x", "../../etc", ALICE)
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the root\n")


def plant(root: Path, outside: Path, steps: list[dict[str, Any]]) -> None:
    """What a local user did between two boots (as the tests' root, with the user's uid)."""
    for step in steps:
        path = root / step["path"].lstrip("/")
        uid = step.get("uid", ALICE)
        if step.get("replace") and (path.exists() or path.is_symlink()):
            if path.is_dir() and not path.is_symlink():
                for child in sorted(path.rglob("*"), reverse=True):
                    child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
                path.rmdir()
            else:
                path.unlink()
        if "link" in step:
            path.symlink_to(step["link"].replace("@OUTSIDE@", str(outside)))
            os.lchown(path, uid, uid)
        elif "hardlink" in step:
            os.link(root / step["hardlink"].lstrip("/"), path)
        elif "fifo" in step:
            os.mkfifo(path)
            os.chown(path, uid, uid)
        elif "dir" in step:
            path.mkdir()
            os.chown(path, uid, uid)
            os.chmod(path, int(step["dir"], 8))


def snapshot(top: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under `top` (and `top`): kind, mode, owner, and contents hash or target."""
    def describe(path: Path) -> tuple[Any, ...]:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = ""
        return stat.filemode(st.st_mode), st.st_uid, st.st_gid, what

    entries = {"/": describe(top)}
    for directory, dirs, files in os.walk(top):  # links to directories are listed, not walked
        for name in [*dirs, *files]:
            path = Path(directory) / name
            entries["/" + str(path.relative_to(top))] = describe(path)
    return entries


def changed(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


@dataclass(frozen=True)
class Case:
    name: str
    data: dict[str, Any]

    @property
    def expect(self) -> dict[str, Any]:
        return self.data["expect"]  # type: ignore[no-any-return]


def load_cases() -> list[Case]:
    return [Case(p.stem, json.loads(p.read_text())) for p in sorted(CORPUS.glob("*.json"))]


CASES = load_cases()


def config_bytes(config: dict[str, Any] | str) -> bytes:
    return config.encode() if isinstance(config, str) else json.dumps(config).encode()


def settings(every_boot: bool, user: str = "admin") -> provision.Settings:
    return provision.Settings(sources=("credentials",),
                              every_boot=frozenset({"credentials"} if every_boot else ()),
                              timeout=5, on_error="emergency", user=user, matchbox_url=None)


def no_network(url: str, deadline: common.Deadline, response_timeout: float | None) -> bytes:
    raise AssertionError(f"the corpus fetches nothing: {url}")


def provision_once(root: Path, tmp: Path, config: dict[str, Any] | str, every_boot: bool,
                   found: dict[str, Any] | None = None, user: str = "admin") -> dict[str, Any]:
    meta = found or {}
    source = metadata.Found("credentials", config_bytes(config),
                            hostname=meta.get("hostname"),
                            ssh_keys=tuple(meta.get("sshKeys", ())))
    chosen = settings(every_boot, user)
    plan = provision.make_plan(source, chosen, no_network)
    return provision.apply(root, plan, chosen, provision.load_state(root), tmp / "run-metadata")


def test_the_corpus_is_large_and_covers_every_outcome() -> None:
    kinds = [next(iter(c.expect)) for c in CASES]
    assert len(CASES) >= 80, len(CASES)
    assert {kinds.count(k) >= 15 for k in ("rejected", "refused", "applied")} == {True}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    seed(root, outside)
    every_boot = case.data.get("everyBoot", False)
    if "firstBoot" in case.data:  # an earlier boot applied this, then a user planted things
        provision_once(root, tmp_path, case.data["firstBoot"], every_boot)
    plant(root, outside, case.data.get("plant", []))
    before, before_outside = snapshot(root), snapshot(outside)
    expect = case.expect
    try:
        provision_once(root, tmp_path, case.data["config"], every_boot,
                       case.data.get("metadata"), case.data.get("user", "admin"))
    except ignition.ConfigError as error:
        assert "rejected" in expect, f"rejected unexpectedly: {error}"
        paths = [p.path for p in error.problems]
        assert any(p.startswith(expect["rejected"]) for p in paths), paths
        assert snapshot(root) == before
    except provision.ProvisionError as error:
        text = "\n".join([str(error), *error.problems])
        assert "refused" in expect, f"refused unexpectedly: {text}"
        assert re.search(expect["refused"], text), text
        assert snapshot(root) == before, changed(before, snapshot(root))
    else:
        assert "applied" in expect, f"applied, but {expect} was expected"
        after = snapshot(root)
        allowed = [*ALWAYS, *expect["applied"].get("changes", [])]
        unexpected = {p for p in changed(before, after)
                      if not any(fnmatch.fnmatchcase(p, g) for g in allowed)}
        assert not unexpected, f"changed outside the allowed paths: {sorted(unexpected)}"
        check_entries(root, expect["applied"].get("entries", {}))
        leftovers = [p for p in after if rootdir.UNDO_PREFIX in p]
        assert not leftovers, leftovers
    assert snapshot(outside) == before_outside


def check_entries(root: Path, entries: dict[str, dict[str, Any]]) -> None:
    for path, want in entries.items():
        host = root / path.lstrip("/")
        if want.get("absent"):
            assert not host.exists() and not host.is_symlink(), path
            continue
        st = os.lstat(host)
        if "mode" in want:
            assert oct(stat.S_IMODE(st.st_mode)) == oct(int(want["mode"], 8)), path
        if "uid" in want:
            assert st.st_uid == want["uid"], (path, st.st_uid)
        if "gid" in want:
            assert st.st_gid == want["gid"], (path, st.st_gid)
        if "kind" in want:
            assert rootdir.Entry.of(st).kind == want["kind"], path
        if "text" in want:
            assert host.read_text() == want["text"], path
        if "contains" in want:
            assert want["contains"] in host.read_text(), path
        if "lacks" in want:
            assert want["lacks"] not in host.read_text(), path
        if "link" in want:
            assert os.readlink(host) == want["link"], path


# ---- faults: every change can fail, and a failure leaves the root as it was

RICH = {
    "ignition": {"version": "3.4.0"},
    "passwd": {
        "groups": [{"name": "web", "gid": 2000}],
        "users": [{"name": "web", "uid": 2000, "sshAuthorizedKeys": ["ssh-ed25519 AAAAw web"]},
                  {"name": "alice", "sshAuthorizedKeys": ["ssh-ed25519 AAAAa alice"]},
                  {"name": "bob", "shouldExist": False}],
    },
    "storage": {
        "directories": [{"path": "/var/lib/app/data", "user": {"name": "web"}, "mode": 448},
                        {"path": "/tmp", "mode": 493}],
        "files": [{"path": "/etc/motd", "overwrite": True, "contents": {"source": "data:,hi"}},
                  {"path": "/etc/ssh/ssh_host_ed25519_key", "mode": 256},
                  {"path": "/etc/hostname", "contents": {"source": "data:,web-1"}},
                  {"path": "/var/lib/app/data/app.conf", "user": {"name": "web"},
                   "contents": {"source": "data:,port=80"}},
                  {"path": "/home/alice/notes.txt", "append": [{"source": "data:,more"}]}],
        "links": [{"path": "/var/lib/app/current", "target": "data"},
                  {"path": "/var/lib/app/hard", "target": "/var/lib/app/data/app.conf",
                   "hard": True}],
    },
    "systemd": {"units": [{"name": "web.service", "enabled": True,
                           "contents": "[Service]\nExecStart=/bin/true\n",
                           "dropins": [{"name": "limits.conf", "contents": "[Service]\n"}]}]},
}


def count_changes(tmp: Path) -> list[str]:
    root, outside = tmp / "count-root", tmp / "count-outside"
    seed(root, outside)
    steps: list[str] = []
    plan = provision.make_plan(metadata.Found("credentials", json.dumps(RICH).encode()),
                               settings(False), no_network)
    provision.apply(root, plan, settings(False), {}, tmp / "m", before_change=steps.append)
    return steps


def test_a_failure_at_any_step_leaves_the_root_as_it_was(tmp_path: Path) -> None:
    steps = count_changes(tmp_path)
    assert len(steps) > 25, steps  # accounts, directories, files, links, units, keys, state
    for index, step in enumerate(steps):
        root, outside = tmp_path / f"root-{index}", tmp_path / f"outside-{index}"
        seed(root, outside)
        before = snapshot(root)
        seen: list[str] = []

        def fail_at(what: str, index: int = index, seen: list[str] = seen) -> None:
            seen.append(what)
            if len(seen) == index + 1:
                raise OSError(28, "No space left on device")

        plan = provision.make_plan(metadata.Found("credentials", json.dumps(RICH).encode()),
                                   settings(False), no_network)
        with pytest.raises(provision.ProvisionError, match="No space left on device"):
            provision.apply(root, plan, settings(False), {}, tmp_path / f"m-{index}",
                            before_change=fail_at)
        assert seen[-1] == step
        assert snapshot(root) == before, (step, sorted(changed(before, snapshot(root))))
        assert not (tmp_path / f"m-{index}").exists()


def test_a_full_disk_leaves_the_root_as_it_was(tmp_path: Path) -> None:
    """A real ENOSPC: the root is a 2 MiB tmpfs and the config's files do not fit."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        seed(root, outside)
        before = snapshot(root)
        big = "data:;base64," + base64.b64encode(b"x" * (900 << 10)).decode()
        config = {"ignition": {"version": "3.4.0"},
                  "passwd": {"users": [{"name": "web", "uid": 2000}]},
                  "storage": {"files": [{"path": f"/var/lib/app/big{i}",
                                         "contents": {"source": big}} for i in range(3)]}}
        plan = provision.make_plan(metadata.Found("credentials", json.dumps(config).encode()),
                                   settings(False), no_network)
        with pytest.raises(provision.ProvisionError, match=r"No space left on device"):
            provision.apply(root, plan, settings(False), {}, tmp_path / "m")
        assert snapshot(root) == before
    finally:
        subprocess.run(["umount", str(root)], check=False)
