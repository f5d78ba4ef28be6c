"""The provisioning apply stage (src/sonix/agents/provision.py) on a fake root: accounts, files,
links, units, SSH keys, host name, tmpfiles.d overrides, every-boot removal, and the rule that an
invalid or unappliable config writes nothing. Sources are metadata.Found values made here;
the sources themselves are tested in test_metadata_sources.py, the parser in test_ignition.py,
and the whole in the initrd by tests/vm/test_provisioning.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from sonix.agents import common, metadata, provision, rootdir

SETTINGS = provision.Settings(
    sources=("credentials",), every_boot=frozenset(), timeout=5, on_error="emergency",
    user="admin", matchbox_url=None,
)


def data_url(text: str) -> str:
    return "data:;base64," + base64.b64encode(text.encode()).decode()


def config(**sections: Any) -> bytes:
    return json.dumps({"ignition": {"version": "3.4.0"}, **sections}).encode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A new root as the initrd sees it after sonix-etc-seed: Debian's accounts, the image's
    tmpfiles lines, /etc/hostname as a link into the factory tree."""
    root = tmp_path / "sysroot"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/usr/bin/bash\n"
        "admin:x:1000:100:Administrator:/home/admin:/usr/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nshadow:x:42:\nusers:x:100:\nsudo:x:27:\n")
    (root / "etc/shadow").write_text("root:*:20000:0:99999:7:::\nadmin:*:20000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\nshadow:*::\nusers:*::\nsudo:*::\n")
    factory = root / "usr/share/factory/etc"
    factory.mkdir(parents=True)
    (factory / "hostname").write_text("minimal\n")
    (root / "etc/hostname").symlink_to("../usr/share/factory/etc/hostname")
    tmpfiles = root / "usr/lib/tmpfiles.d"
    tmpfiles.mkdir(parents=True)
    (tmpfiles / "00-sonix-etc.conf").write_text(
        "L+ /etc/hostname - - - - /usr/share/factory/etc/hostname\n"
        "C /etc/motd 0644 root root -\nz /etc/motd 0644 root root -\n")
    (root / "home/admin").mkdir(parents=True)
    return root


def provision_with(root: Path, found: metadata.Found, settings: provision.Settings = SETTINGS,
                   fetch: provision.Fetch | None = None) -> dict[str, Any]:
    def no_network(url: str, deadline: common.Deadline, response_timeout: float | None
                   ) -> bytes:
        raise AssertionError(f"unexpected fetch of {url}")

    plan = provision.make_plan(found, settings, fetch or no_network)
    return provision.apply(root, plan, settings, provision.load_state(root),
                           root / "run/metadata/sonix")


def tree(root: Path) -> dict[str, str]:
    """Every file and link under root with its content or target (to see that nothing
    changed)."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            result[rel] = path.read_text(errors="replace")
    return result


def test_files_directories_links_and_units(root: Path) -> None:
    found = metadata.Found("credentials", config(
        storage={
            "directories": [{"path": "/srv/www", "mode": 0o750}],
            "files": [
                {"path": "/srv/www/index.html", "contents": {"source": data_url("hello\n")},
                 "mode": 0o640},
                {"path": "/etc/hostname", "contents": {"source": data_url("web-1\n")}},
            ],
            "links": [{"path": "/srv/current", "target": "/srv/www"}],
        },
        systemd={"units": [
            {"name": "hello.service", "enabled": True,
             "contents": "[Service]\nExecStart=/usr/bin/true\n"},
            {"name": "getty@tty1.service", "mask": True},
            {"name": "systemd-networkd.service", "enabled": True},
            {"name": "systemd-journald.service",
             "dropins": [{"name": "size.conf", "contents": "[Service]\nX=1\n"}]},
        ]},
    ))
    state = provision_with(root, found)
    assert (root / "srv/www/index.html").read_text() == "hello\n"
    assert (root / "srv/www/index.html").stat().st_mode & 0o7777 == 0o640
    assert (root / "srv/www").stat().st_mode & 0o7777 == 0o750
    assert os.readlink(root / "srv/current") == "/srv/www"
    units = root / "etc/systemd/system"
    assert "ExecStart=/usr/bin/true" in (units / "hello.service").read_text()
    assert os.readlink(units / "multi-user.target.wants/hello.service") == "../hello.service"
    assert os.readlink(units / "getty@tty1.service") == "/dev/null"
    assert os.readlink(units / "multi-user.target.wants/systemd-networkd.service") == (
        "/usr/lib/systemd/system/systemd-networkd.service")  # a unit of the image
    assert (units / "systemd-journald.service.d/size.conf").read_text() == "[Service]\nX=1\n"
    # The factory link was replaced without `overwrite`, and tmpfiles will not put it back.
    assert not (root / "etc/hostname").is_symlink()
    assert (root / "etc/hostname").read_text() == "web-1\n"
    # The image's tmpfiles file without its L+ for /etc/hostname: it would relink it at boot.
    override = (root / "etc/tmpfiles.d/00-sonix-etc.conf").read_text().splitlines()
    assert override[1:] == ["L /etc/hostname - - - - /usr/share/factory/etc/hostname",
                            "C /etc/motd 0644 root root -", "z /etc/motd 0644 root root -"]
    assert "/etc/hostname" in state["written"]
    assert "SONIX_PROVISION_SOURCE=credentials" in (root / "run/metadata/sonix").read_text()


def test_users_groups_keys_and_metadata(root: Path) -> None:
    found = metadata.Found(
        "ec2",
        config(passwd={
            "users": [
                {"name": "alice", "sshAuthorizedKeys": ["ssh-ed25519 AAAA alice"],
                 "groups": ["sudo"], "passwordHash": "$y$j9T$abc"},
                {"name": "backup", "system": True, "noCreateHome": True},
            ],
            "groups": [{"name": "ops", "gid": 2000}],
        }),
        attributes={"SONIX_EC2_INSTANCE_ID": "i-0123", "SONIX_EC2_HOSTNAME": "ip-10-0-0-5"},
        hostname="ip-10-0-0-5", ssh_keys=("ssh-rsa BBBB meta",),
    )
    provision_with(root, found)
    passwd = (root / "etc/passwd").read_text()
    assert "alice:x:1001:1001::/home/alice:/usr/bin/bash" in passwd
    backup = next(line for line in passwd.splitlines() if line.startswith("backup:"))
    assert int(backup.split(":")[2]) < 1000
    group = (root / "etc/group").read_text()
    assert "ops:x:2000:" in group and "sudo:x:27:alice" in group
    assert "alice:$y$j9T$abc:" in (root / "etc/shadow").read_text()
    alice_keys = root / "home/alice/.ssh/authorized_keys"
    assert alice_keys.read_text() == "ssh-ed25519 AAAA alice\n"
    assert alice_keys.stat().st_mode & 0o777 == 0o600
    assert (alice_keys.stat().st_uid, (root / "home/alice").stat().st_mode & 0o777) == (
        1001, 0o700)
    # The metadata's keys go to provisioning.user (admin, who exists).
    assert (root / "home/admin/.ssh/authorized_keys").read_text() == "ssh-rsa BBBB meta\n"
    assert (root / "etc/hostname").read_text() == "ip-10-0-0-5\n"
    attributes = (root / "run/metadata/sonix").read_text()
    assert "SONIX_EC2_INSTANCE_ID=i-0123\n" in attributes
    assert "SONIX_PROVISION_SOURCE=ec2\n" in attributes


def test_remote_file_is_fetched_and_its_hash_checked(root: Path) -> None:
    body = b"remote body\n"
    good = hashlib.sha512(body).hexdigest()
    fetched = []

    def fetch(url: str, deadline: common.Deadline, response_timeout: float | None) -> bytes:
        assert 4 < deadline.left() <= 5  # all remote files share SETTINGS.timeout
        assert response_timeout == 10
        fetched.append(url)
        return body

    found = metadata.Found("credentials", config(storage={"files": [
        {"path": "/etc/app.conf", "contents": {
            "source": "http://192.0.2.1/app.conf", "verification": {"hash": f"sha512-{good}"}}},
    ]}))
    provision_with(root, found, fetch=fetch)
    assert (root / "etc/app.conf").read_bytes() == body and fetched == ["http://192.0.2.1/app.conf"]

    before = tree(root)
    bad = metadata.Found("credentials", config(storage={"files": [
        {"path": "/etc/other.conf", "contents": {"source": data_url("x")}},
        {"path": "/etc/app2.conf", "contents": {
            "source": "http://192.0.2.1/app.conf",
            "verification": {"hash": "sha512-" + "0" * 128}}},
    ]}))
    with pytest.raises(provision.ProvisionError, match=r"storage.files.1.*sha512"):
        provision_with(root, bad, fetch=fetch)
    assert tree(root) == before  # nothing of it written


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"files": [{"path": "/etc/motd-x", "contents": {"source": data_url("a")}},
                    {"path": "/etc/passwd", "contents": {"source": data_url("b")}}]},
         r"/etc/passwd exists; set overwrite: true"),
        ({"files": [{"path": "/etc/x", "user": {"name": "nobody-here"},
                     "contents": {"source": data_url("a")}}]},
         r"user 'nobody-here' does not exist"),
    ],
)
def test_a_config_that_cannot_be_applied_writes_nothing(
    root: Path, storage: dict[str, Any], message: str
) -> None:
    before = tree(root)
    with pytest.raises(provision.ProvisionError) as error:
        provision_with(root, metadata.Found("credentials", config(storage=storage)))
    assert any(re.search(message, p) for p in error.value.problems), error.value.problems
    assert tree(root) == before


def test_run_reports_an_invalid_config_and_stops_or_continues(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = metadata.Found("credentials", b'{"ignition": {"version": "3.4.0"}, '
                         b'"storage": {"files": [{"path": "etc/x"}]}}')
    monkeypatch.setattr(metadata, "discover", lambda env, order, timeout: bad)
    before = tree(root)
    env = metadata.Environment()
    assert provision.run(root, SETTINGS, env, root / "run/metadata/sonix") == 1
    err = capsys.readouterr().err
    assert "the Ignition config is invalid; nothing of it was written" in err
    assert "$.storage.files.0.path" in err and "emergency" in err
    assert tree(root) == before
    lenient = provision.Settings(**{**SETTINGS.__dict__, "on_error": "continue"})
    assert provision.run(root, lenient, env, root / "run/metadata/sonix") == 0
    assert tree(root) == before


def test_tmpfiles_overrides_follow_the_booted_image_and_go_when_not_needed(
    root: Path
) -> None:
    image = root / "usr/lib/tmpfiles.d/00-sonix-etc.conf"

    def write_tmpfiles_overrides(root: Path, provisioned: list[str]) -> None:
        with rootdir.Transaction(root) as tx:
            provision.write_tmpfiles_overrides(tx, root, provisioned)

    write_tmpfiles_overrides(root, ["/etc/motd"])
    override = root / "etc/tmpfiles.d/00-sonix-etc.conf"
    assert override.read_text().splitlines()[1:] == [
        "L+ /etc/hostname - - - - /usr/share/factory/etc/hostname",
        "C /etc/motd 0644 root root -"]  # z would reset the provisioned file's mode
    # A new release adds a line: the next boot's override has it.
    image.write_text(image.read_text() + "L+ /etc/issue - - - - /usr/share/factory/etc/issue\n")
    write_tmpfiles_overrides(root, ["/etc/motd"])
    assert "L+ /etc/issue" in override.read_text()
    # Nothing provisioned any more: the override goes; an admin's own file stays.
    admin = root / "etc/tmpfiles.d/10-admin.conf"
    admin.write_text("d /srv/data 0755 root root -\n")
    write_tmpfiles_overrides(root, [])
    assert not override.exists() and admin.exists()


def test_first_boot_policy_provisions_once(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def discover(env: metadata.Environment, order: list[str], timeout: float
                 ) -> metadata.Found:
        calls.append(list(order))
        return metadata.Found("credentials", config(storage={"files": [
            {"path": "/etc/one", "contents": {"source": data_url("1")}}]}),
            attributes={"SONIX_X": "y"})

    monkeypatch.setattr(metadata, "discover", discover)
    env = metadata.Environment()
    run_metadata = root / "run/metadata/sonix"
    assert provision.run(root, SETTINGS, env, run_metadata) == 0
    run_metadata.unlink()  # a new boot: /run is empty
    assert provision.run(root, SETTINGS, env, run_metadata) == 0
    assert calls == [["credentials"]]  # the second boot asked no source
    assert "SONIX_X=y" in run_metadata.read_text()  # but has the attributes again


def test_every_boot_policy_removes_what_the_config_dropped(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = provision.Settings(**{**SETTINGS.__dict__, "sources": ("matchbox",),
                                     "every_boot": frozenset({"matchbox"})})
    configs = [
        config(storage={"files": [
            {"path": "/etc/a", "contents": {"source": data_url("a1")}},
            {"path": "/etc/b", "contents": {"source": data_url("b")}}]},
            systemd={"units": [{"name": "x.service", "enabled": True, "contents": "[Service]\n"}]}),
        config(storage={"files": [
            {"path": "/etc/a", "contents": {"source": data_url("a2")}}]}),
    ]
    monkeypatch.setattr(metadata, "discover", lambda env, order, timeout: metadata.Found(
        "matchbox", configs.pop(0), channel="http://192.0.2.9/stable/", profile="web"))
    env = metadata.Environment()
    assert provision.run(root, settings, env, root / "run/metadata/sonix") == 0
    assert (root / "etc/b").exists() and (root / "etc/systemd/system/x.service").exists()
    assert json.loads((root / "etc/sonix/update.json").read_text()) == {
        "channel": "http://192.0.2.9/stable/"}
    # The second boot: /etc/a changed (overwritten without `overwrite`: it is ours), /etc/b
    # and the unit with its link are gone.
    assert provision.run(root, settings, env, root / "run/metadata/sonix") == 0
    assert (root / "etc/a").read_text() == "a2"
    assert not (root / "etc/b").exists()
    assert not (root / "etc/systemd/system/x.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/x.service").is_symlink()


def test_nothing_found_boots_the_image_as_it_is(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(metadata, "discover", lambda env, order, timeout: None)
    assert provision.run(root, SETTINGS, metadata.Environment(), root / "run/m") == 0
    assert "no configuration found" in capsys.readouterr().err
    assert provision.load_state(root)["source"] is None
