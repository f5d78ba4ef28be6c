"""The Ignition v3 parser (src/sonix/agents/ignition.py) and `sonix provision validate`.

The corpus in tests/fixtures/ignition is data, not code: every valid/*.ign must be accepted,
every invalid/*.ign rejected, with the problems its .expect file lists (one
`$.json.path: message fragment` per line). tests/integration/test_ignition_conformance.py runs
the same corpus through Debian's ignition-validate.
"""

from __future__ import annotations

import ast
import base64
import gzip
import hashlib
import io
import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from sonix import cli
from sonix.agents import ignition
from sonix.agents.ignition import (
    ConfigError,
    Directory,
    Dropin,
    File,
    Group,
    Link,
    Problem,
    RemoteSource,
    Timeouts,
    Unit,
    User,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/fixtures/ignition"
VALID = sorted((CORPUS / "valid").glob("*.ign"))
INVALID = sorted((CORPUS / "invalid").glob("*.ign"))
MODULE = ROOT / "src/sonix/agents/ignition.py"

MOTD = b"Welcome to sonix.\n"


def config(version: str = "3.5.0", **sections: Any) -> bytes:
    ignition_section = {"version": version, **sections.pop("ignition", {})}
    return json.dumps({"ignition": ignition_section, **sections}).encode()


def file_config(version: str = "3.5.0", **entry: Any) -> bytes:
    return config(version, storage={"files": [{"path": "/etc/example", **entry}]})


def problems(data: bytes) -> list[str]:
    return [str(p) for p in ignition.validate(data)]


def rejected_at(data: bytes, path: str, fragment: str = "") -> None:
    found = ignition.validate(data)
    assert any(p.path == path and fragment in p.message for p in found), found


def data_url(data: bytes) -> str:
    return "data:;base64," + base64.b64encode(data).decode()


def sha(name: str, data: bytes) -> str:
    return f"{name}-{hashlib.new(name, data).hexdigest()}"


def expectations(fixture: Path) -> list[tuple[str, str]]:
    expect = fixture.with_suffix(".expect")
    if not expect.exists():
        return []
    lines = expect.read_text().splitlines()
    return [(line.partition(": ")[0], line.partition(": ")[2]) for line in lines if line]


# ---- the corpus --------------------------------------------------------------------------


def test_corpus_size() -> None:
    assert len(VALID) >= 10
    assert len(INVALID) >= 40
    assert {p.stem for p in VALID}.isdisjoint({p.stem for p in INVALID})
    # Every spec version has valid configs.
    versions = {json.loads(p.read_bytes())["ignition"]["version"] for p in VALID}
    assert versions == set(ignition.SPEC_VERSIONS)


@pytest.mark.parametrize("fixture", VALID, ids=lambda p: p.stem)
def test_valid_config_is_accepted(fixture: Path) -> None:
    assert problems(fixture.read_bytes()) == []
    assert ignition.parse(fixture.read_bytes()).version in ignition.SPEC_VERSIONS


@pytest.mark.parametrize("fixture", INVALID, ids=lambda p: p.stem)
def test_invalid_config_is_rejected(fixture: Path) -> None:
    data = fixture.read_bytes()
    found = ignition.validate(data)
    assert found, "accepted"
    for path, fragment in expectations(fixture):
        assert any(p.path == path and fragment in p.message for p in found), (
            f"expected {path}: …{fragment}…, got {[str(p) for p in found]}")
    with pytest.raises(ConfigError) as caught:
        ignition.parse(data)
    assert caught.value.problems == found


def test_every_invalid_fixture_states_its_problem() -> None:
    assert [p.name for p in INVALID if not expectations(p)] == []


# ---- parse results -----------------------------------------------------------------------


def test_files_directories_links_units_and_accounts() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_0-files-units-users.ign").read_bytes())
    assert parsed.version == "3.0.0"
    assert parsed.directories == (Directory("/var/lib/app", 0o750, "app", 1000, False),)
    motd, app_config = parsed.files
    assert motd == File("/etc/motd", MOTD, (), 0o644, None, None, False)
    assert app_config == File("/var/lib/app/config.toml", b"[app]\nport = 8080\n", (), 0o600,
                              1000, None, True)
    assert parsed.links == (
        Link("/etc/localtime", "../usr/share/zoneinfo/UTC", False, None, None, True),
        Link("/var/lib/app/config.link", "/var/lib/app/config.toml", True, None, None, False),
    )
    app, networkd = parsed.units
    assert app.name == "app.service" and app.enabled and not app.mask
    assert app.contents is not None and app.contents.startswith("[Unit]\nDescription=App\n")
    assert app.dropins == (Dropin("10-env.conf", "[Service]\nEnvironment=PORT=8080\n"),)
    assert networkd == Unit("systemd-networkd.service", None, True, False, ())
    service, admin = parsed.users
    assert service == User(
        name="app", should_exist=True, password_hash=None, ssh_authorized_keys=(), uid=1000,
        gecos="The app", home_dir="/var/lib/app", no_create_home=True, primary_group="app",
        groups=("adm",), no_user_group=True, no_log_init=False, shell="/usr/sbin/nologin",
        system=True)
    assert admin.ssh_authorized_keys[0].startswith("ssh-ed25519 ")
    assert admin.password_hash is not None and admin.password_hash.startswith("$y$")
    assert admin.no_log_init and admin.uid is None and admin.home_dir is None
    assert parsed.groups == (Group("app", True, 1000, None, True),
                             Group("ops", True, None, "!", False))
    assert parsed.timeouts == Timeouts(None, None)
    assert parsed.http_sources == ()


def test_remote_sources_are_kept_for_the_apply_stage() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_1-remote-sha256-gzip.ign").read_bytes())
    large, plain, inline = parsed.files
    assert large.contents == RemoteSource("https://example.com/large.bin.gz",
                                          sha("sha256", b"large"), "gzip")
    assert plain.contents == RemoteSource("http://192.0.2.1:8080/plain.txt",
                                          sha("sha512", b"plain"), None)
    assert inline.contents == MOTD
    assert parsed.http_sources == (large.contents, plain.contents)


def test_append_and_empty_source() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_1-append.ign").read_bytes())
    hosts, empty, touched = parsed.files
    assert hosts.contents == b"127.0.0.1 localhost\n"
    assert hosts.append == (b"192.0.2.10 db\n", b"192.0.2.11 cache\n",
                            RemoteSource("https://example.com/hosts.extra", None, None))
    assert parsed.http_sources == (hosts.append[2],)
    assert empty.contents == b"" and empty.overwrite  # source "": an empty file
    assert touched == File("/etc/touched", None, (), None, None, None, False)


def test_accounts_to_delete() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_2-delete-accounts.ign").read_bytes())
    games, core = parsed.users
    assert not games.should_exist and core.should_exist
    assert parsed.groups == (Group("games", False, None, None, False),)


def test_timeouts() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_2-timeouts.ign").read_bytes())
    assert parsed.timeouts == Timeouts(http_response_headers=30, http_total=600)
    rejected_at(config(ignition={"timeouts": {"httpResponseHeaders": -1}}),
                "$.ignition.timeouts.httpResponseHeaders", "negative")


def test_units_enabled_masked_dropins() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_3-units.ign").read_bytes())
    units = {u.name: u for u in parsed.units}
    assert units["getty@tty2.service"] == Unit("getty@tty2.service", None, True, False, ())
    assert units["debug-shell.service"] == Unit("debug-shell.service", None, False, True, ())
    assert units["systemd-journald.service"].dropins[1] == Dropin("60-empty.conf", "")
    assert units["backup.timer"].enabled
    # enabled: false and an absent `enabled` both mean: no multi-user.target.wants link.
    assert not units["var-data.mount"].enabled and not units["backup.service"].enabled
    assert ignition.WANTED_BY == "multi-user.target"


def test_null_means_absent() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_3-nulls.ign").read_bytes())
    assert parsed.files == (File("/etc/nulls", None, (), None, None, None, False),)
    assert parsed.users[0].uid is None and parsed.users[0].groups == ()


def test_empty_unsupported_sections_are_accepted() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_3-empty-unsupported.ign").read_bytes())
    assert parsed.files == () and parsed.units == ()


def test_special_mode_bits_from_3_4() -> None:
    parsed = ignition.parse((CORPUS / "valid/v3_4-special-modes.ign").read_bytes())
    assert parsed.directories[0].mode == 0o1777
    assert parsed.files[0].mode == 0o4755
    assert parsed.files[0].contents == b"#!/bin/sh\nexit 0\n"
    for version in ("3.0.0", "3.1.0", "3.2.0", "3.3.0"):
        rejected_at(file_config(version, mode=0o4755), "$.storage.files.0.mode",
                    "setuid/setgid/sticky bits need spec 3.4.0")
    for version in ("3.4.0", "3.5.0"):
        assert problems(file_config(version, mode=0o7777)) == []


@pytest.mark.parametrize("mode", [0, 0o644, 0o7777])
def test_modes_in_range(mode: int) -> None:
    assert ignition.parse(file_config(mode=mode)).files[0].mode == mode


@pytest.mark.parametrize("mode", [-1, 0o10000, 99999])
def test_modes_out_of_range(mode: int) -> None:
    rejected_at(file_config(mode=mode), "$.storage.files.0.mode", "illegal file mode")


def test_owners_by_id_or_name() -> None:
    entry = ignition.parse(file_config(user={"id": 0}, group={"name": "adm"})).files[0]
    assert (entry.user, entry.group) == (0, "adm")
    # An empty name is no name, as in Ignition.
    assert ignition.parse(file_config(user={"id": 5, "name": ""})).files[0].user == 5
    rejected_at(file_config(group={"id": 1, "name": "x"}), "$.storage.files.0.group",
                "both id and name")


# ---- version gates -----------------------------------------------------------------------

# (version that introduced it, config sections using it, its JSON path)
GATES: list[tuple[str, dict[str, Any], str]] = [
    ("3.1.0", {"ignition": {"proxy": {}}}, "$.ignition.proxy"),
    ("3.1.0", {"storage": {"files": [{"path": "/a", "contents": {"httpHeaders": []}}]}},
     "$.storage.files.0.contents.httpHeaders"),
    ("3.1.0", {"storage": {"files": [{"path": "/a", "append": [
        {"source": "data:,", "httpHeaders": None}]}]}},
     "$.storage.files.0.append.0.httpHeaders"),
    ("3.2.0", {"storage": {"luks": []}}, "$.storage.luks"),
    ("3.2.0", {"passwd": {"users": [{"name": "a", "shouldExist": True}]}},
     "$.passwd.users.0.shouldExist"),
    ("3.2.0", {"passwd": {"groups": [{"name": "a", "shouldExist": True}]}},
     "$.passwd.groups.0.shouldExist"),
    ("3.3.0", {"kernelArguments": {}}, "$.kernelArguments"),
]


@pytest.mark.parametrize(("since", "sections", "path"), GATES, ids=[g[2] for g in GATES])
def test_version_gate(since: str, sections: dict[str, Any], path: str) -> None:
    index = ignition.SPEC_VERSIONS.index(since)
    for version in ignition.SPEC_VERSIONS[:index]:
        rejected_at(config(version, **sections), path, f"not in spec {version}")
    for version in ignition.SPEC_VERSIONS[index:]:
        assert problems(config(version, **sections)) == []


def test_sha256_needs_3_1() -> None:
    contents = {"source": "data:,", "verification": {"hash": sha("sha256", b"")}}
    rejected_at(file_config("3.0.0", contents=contents),
                "$.storage.files.0.contents.verification.hash", "sha256 needs spec 3.1.0")
    assert problems(file_config("3.1.0", contents=contents)) == []


def test_schema_versions_are_known() -> None:
    def since(type_: ignition.Type) -> set[ignition.Version]:
        if isinstance(type_, ignition.ListOf):
            return since(type_.item)
        if isinstance(type_, ignition.Object):
            return {v for f in type_.fields.values() for v in {f.since} | since(f.type)}
        return set()

    known = {ignition._version(v) for v in ignition.SPEC_VERSIONS}
    assert since(ignition.CONFIG) <= known


@pytest.mark.parametrize("version", ["3.0", "3", "3.0.0.0", "v3.0.0", "3.00.0"])
def test_malformed_versions(version: str) -> None:
    rejected_at(config(version), "$.ignition.version", "invalid spec version")


@pytest.mark.parametrize("version", ["2.3.0", "1.0.0", "3.6.0", "4.0.0", "3.5.0-experimental",
                                     "3.3.0+build"])
def test_unsupported_versions(version: str) -> None:
    rejected_at(config(version), "$.ignition.version", "unsupported spec version")


def test_other_problems_are_reported_with_a_bad_version() -> None:
    found = problems(config("9.9.9", storage={"files": [{"path": "relative"}]}))
    assert len(found) == 2 and found[1] == "$.storage.files.0.path: path not absolute"


# ---- contents ----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "expected"), [
    ("data:,hello", b"hello"),
    ("data:,", b""),
    ("", b""),
    ("data:,a%20b%0A%00%ff", b"a b\n\0\xff"),
    ("data:text/plain,a;b/c?d", b"a;b/c?d"),
    ("DATA:,upper-case%20scheme", b"upper-case scheme"),
    ("data:;base64,aGVsbG8=", b"hello"),
    ("data:text/plain;charset=utf-8;base64,aMOpbGxv", "héllo".encode()),
    ("data:application/octet-stream;base64,AAEC/w==", b"\0\1\2\xff"),
])
def test_data_urls(source: str, expected: bytes) -> None:
    assert ignition.parse(file_config(contents={"source": source})).files[0].contents == expected


def test_gzip_data_urls() -> None:
    packed = gzip.compress(MOTD)
    for source in (data_url(packed), "data:," + urllib.parse.quote_from_bytes(packed)):
        parsed = ignition.parse(file_config(contents={"source": source, "compression": "gzip"}))
        assert parsed.files[0].contents == MOTD
    two_members = gzip.compress(b"one ") + gzip.compress(b"two")
    parsed = ignition.parse(file_config(append=[{"source": data_url(two_members),
                                                 "compression": "gzip"}]))
    assert parsed.files[0].append == (b"one two",)
    rejected_at(file_config(contents={"source": data_url(packed[:-4]), "compression": "gzip"}),
                "$.storage.files.0.contents.source", "not valid gzip")


@pytest.mark.parametrize("function", ["sha256", "sha512"])
def test_hashes_of_inline_contents(function: str) -> None:
    good = sha(function, MOTD)
    for digest in (good, good.upper().replace(function.upper(), function)):
        contents = {"source": data_url(MOTD), "verification": {"hash": digest}}
        assert ignition.parse(file_config(contents=contents)).files[0].contents == MOTD
    # The hash describes the decompressed contents.
    contents = {"source": data_url(gzip.compress(MOTD)), "compression": "gzip",
                "verification": {"hash": good}}
    assert ignition.parse(file_config(contents=contents)).files[0].contents == MOTD
    contents = {"source": "data:,other", "verification": {"hash": good}}
    rejected_at(file_config(contents=contents), "$.storage.files.0.contents.verification.hash",
                f"{function} hash does not match")


@pytest.mark.parametrize(("digest", "fragment"), [
    ("sha512", "malformed hash specifier"),
    ("sha512-", "malformed hash specifier"),
    ("", "malformed hash specifier"),
    ("md5-" + "0" * 32, "unrecognized hash function"),
    ("SHA512-" + "0" * 128, "unrecognized hash function"),
    ("sha512-" + "0" * 127, "incorrect size for hash sum"),
    ("sha256-" + "0" * 128, "incorrect size for hash sum"),
    ("sha256-" + "g" * 64, "not hexadecimal"),
])
def test_malformed_hashes(digest: str, fragment: str) -> None:
    contents = {"source": "https://example.com/x", "verification": {"hash": digest}}
    rejected_at(file_config(contents=contents), "$.storage.files.0.contents.verification.hash",
                fragment)


def test_remote_hashes_are_normalised() -> None:
    digest = sha("sha256", b"x")
    contents = {"source": "https://example.com/x",
                "verification": {"hash": "sha256-" + digest[7:].upper()}}
    source = ignition.parse(file_config(contents=contents)).files[0].contents
    assert source == RemoteSource("https://example.com/x", digest, None)


def test_remote_source_decode() -> None:
    source = RemoteSource("https://example.com/motd.gz", sha("sha512", MOTD), "gzip")
    assert source.decode(gzip.compress(MOTD)) == MOTD
    with pytest.raises(ValueError, match="sha512 hash does not match"):
        source.decode(gzip.compress(b"tampered"))
    with pytest.raises(ValueError, match="not valid gzip"):
        source.decode(MOTD)
    assert RemoteSource("https://example.com/x", None, None).decode(b"any") == b"any"


@pytest.mark.parametrize(("source", "fragment"), [
    ("tftp://192.0.2.1/x", "does not support tftp"),
    ("s3://bucket/x", "does not support s3"),
    ("gs://bucket/x", "does not support gs"),
    ("arn:aws:s3:::bucket/x", "does not support arn"),
    ("oem:///x", "invalid url scheme"),
    ("file:///etc/passwd", "invalid url scheme"),
    ("/etc/passwd", "invalid url scheme"),
    ("https://", "no host"),
    ("https://example.com:99999/x", "unable to parse url"),
    ("https://example.com/a b", "unable to parse url"),
    ("http://example.com/x", "needs a hash"),
    ("data:x", "no comma"),
    ("data:text,x", "invalid media type"),
    ("data:text/plain;charset,x", "invalid parameter"),
    ("data:,50%", "malformed data URL"),
    ("data:,a%2", "malformed data URL"),
    ("data:,é", "malformed data URL"),
    ("data:,a#b", "malformed data URL"),
    ("data:;base64,aGVsbG8", "invalid base64"),
    ("data:;base64,aGVs bG8=", "invalid base64 character"),
    ("data:;base64,aGVsbG8%3D", "invalid base64 character"),
])
def test_rejected_sources(source: str, fragment: str) -> None:
    found = ignition.validate(file_config(contents={"source": source}))
    assert any(fragment in p.message for p in found), found
    assert {p.path for p in found} <= {"$.storage.files.0.contents.source",
                                       "$.storage.files.0.contents.verification.hash"}


def test_source_rules() -> None:
    rejected_at(file_config(contents={"source": "data:,", "compression": "xz"}),
                "$.storage.files.0.contents.compression", "invalid compression method")
    rejected_at(file_config(contents={"compression": "gzip"}),
                "$.storage.files.0.contents.compression", "source must be specified")
    rejected_at(file_config(contents={"verification": {"hash": sha("sha512", b"")}}),
                "$.storage.files.0.contents.verification.hash", "source must be specified")
    rejected_at(file_config(append=[{"compression": None}]), "$.storage.files.0.append.0.source",
                "needs a source")
    rejected_at(file_config(overwrite=True), "$.storage.files.0.overwrite",
                "overwrite must be false if source is unspecified")
    assert problems(file_config(overwrite=True, contents={"source": ""})) == []


def test_file_size_limit() -> None:
    limit = ignition.MAX_FILE_SIZE
    assert limit == 16 * 1024 * 1024
    at_limit = ignition.parse(file_config(contents={"source": data_url(bytes(limit))}))
    assert at_limit.files[0].contents == bytes(limit)
    rejected_at(file_config(contents={"source": data_url(bytes(limit + 1))}),
                "$.storage.files.0.contents.source", "larger than sonix's limit of 16 MiB")
    bomb = gzip.compress(bytes(limit * 4))  # stops decompressing just past the limit
    rejected_at(file_config(contents={"source": data_url(bomb), "compression": "gzip"}),
                "$.storage.files.0.contents.source", "larger than sonix's limit")


def test_limits_count_appended_fragments_and_all_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ignition, "MAX_FILE_SIZE", 10)
    monkeypatch.setattr(ignition, "MAX_INLINE_SIZE", 25)
    rejected_at(file_config(contents={"source": "data:,123456"},
                            append=[{"source": "data:,789ab"}]),
                "$.storage.files.0", "11 bytes, more than sonix's limit")
    files = [{"path": f"/etc/{i}", "contents": {"source": "data:,123456789"}} for i in range(3)]
    assert [p.path for p in ignition.validate(config(storage={"files": files}))] == [
        "$.storage.files.2"]


# ---- paths, links --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "fragment"), [
    ("", "path not specified"),
    ("etc/x", "path not absolute"),
    ("/etc/../x", "not fully simplified"),
    ("/etc/./x", "not fully simplified"),
    ("/etc//x", "not fully simplified"),
    ("//etc/x", "not fully simplified"),
    ("/etc/x/", "not fully simplified"),
    ("/..", "not fully simplified"),
    ("/", "root directory"),
    ("/usr", "/usr is the read-only"),
    ("/usr/lib/x", "/usr is the read-only"),
    ("/etc/a\0b", "NUL"),
])
def test_bad_paths(path: str, fragment: str) -> None:
    for kind, extra in (("files", {}), ("directories", {}), ("links", {"target": "/x"})):
        rejected_at(config(storage={kind: [{"path": path, **extra}]}),
                    f"$.storage.{kind}.0.path", fragment)


def test_paths_next_to_usr_are_fine() -> None:
    assert problems(file_config(path="/usrlocal")) == []


def test_duplicates_are_reported_where_ignition_reports_them() -> None:
    # Directories, then files, then links: the later entry is the duplicate.
    found = ignition.validate(config(storage={
        "links": [{"path": "/a", "target": "/x"}], "files": [{"path": "/a"}, {"path": "/b"}],
        "directories": [{"path": "/b"}]}))
    assert [(p.path, p.message.split(":")[0]) for p in found] == [
        ("$.storage.files.1", "duplicate entry defined"),
        ("$.storage.links.0", "duplicate entry defined")]


def test_nodes_below_links_and_files() -> None:
    found = problems(config(storage={
        "links": [{"path": "/etc/app", "target": "/var/app"}, {"path": "/etc/app/x"}],
        "directories": [{"path": "/etc/app/sub"}], "files": [{"path": "/f"}, {"path": "/f/g"}]}))
    assert found == [
        "$.storage.directories.0: directory path includes link in config (/etc/app)",
        "$.storage.files.1: file path is below the file /f in config",
        "$.storage.links.1: link path includes link in config (/etc/app)",
        "$.storage.links.1.target: link target is required"]


def test_links() -> None:
    parsed = ignition.parse(config(storage={"links": [
        {"path": "/etc/a", "target": "relative/target"},
        {"path": "/etc/b", "target": "/etc/a", "hard": True, "overwrite": True},
        {"path": "/etc/c", "target": "/etc/a", "user": {"id": 1}, "group": {"name": "g"}}]}))
    assert parsed.links == (Link("/etc/a", "relative/target", False, None, None, False),
                            Link("/etc/b", "/etc/a", True, None, None, True),
                            Link("/etc/c", "/etc/a", False, 1, "g", False))
    for target, fragment in (("x", "not absolute"), ("/etc/../x", "not fully simplified"),
                             ("/usr/bin/true", "into /usr"), ("/d", "cannot hard-link a dir")):
        rejected_at(config(storage={"directories": [{"path": "/d"}], "links": [
            {"path": "/etc/b", "target": target, "hard": True}]}),
            "$.storage.links.0.target", fragment)
    rejected_at(config(storage={"links": [{"path": "/etc/b", "target": "/etc/a", "hard": True,
                                           "group": {"id": 0}}]}),
                "$.storage.links.0.group", "hard link has no group")


def test_nodes_must_not_stand_where_units_go() -> None:
    found = problems(config(
        storage={"files": [{"path": "/etc/systemd/system/a.service.d/x.conf"}],
                 "links": [{"path": "/etc/systemd/system/multi-user.target.wants",
                            "target": "/x"}],
                 "directories": [{"path": "/etc/systemd/system/b.service"}]},
        systemd={"units": [{"name": "a.service", "enabled": True,
                            "dropins": [{"name": "x.conf"}]},
                           {"name": "b.service", "mask": True}]}))
    assert found == [
        "$.storage.directories.0: conflicts with /etc/systemd/system/b.service, written for "
        "$.systemd.units.1",
        "$.storage.files.0: conflicts with /etc/systemd/system/a.service.d/x.conf, written for "
        "$.systemd.units.0.dropins.0",
        "$.storage.links.0: conflicts with /etc/systemd/system/multi-user.target.wants/"
        "a.service, written for $.systemd.units.0"]
    # A directory above a unit's file is fine.
    assert problems(config(storage={"directories": [{"path": "/etc/systemd/system"}]},
                           systemd={"units": [{"name": "a.service", "enabled": True}]})) == []


# ---- units -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.service", "a.socket", "a.device", "dev-sda.device",
                                  "-.mount", "a.automount", "a.swap", "a.target", "a.path",
                                  "a.timer", "a.slice", "a.scope", "getty@tty1.service",
                                  "a@b@c.service", "a:b_c.d-e\\x2d.service"])
def test_valid_unit_names(name: str) -> None:
    assert ignition.parse(config(systemd={"units": [{"name": name}]})).units[0].name == name


@pytest.mark.parametrize(("name", "fragment"), [
    ("", "invalid systemd unit extension"),
    ("a", "invalid systemd unit extension"),
    ("a.conf", "invalid systemd unit extension"),
    ("a.snapshot", "invalid systemd unit extension"),
    ("a.Service", "invalid systemd unit extension"),
    (".service", "without a prefix"),
    ("@x.service", "without a prefix"),
    ("a/b.service", "invalid unit name"),
    ("a b.service", "invalid unit name"),
    ("é.service", "invalid unit name"),
    ("a" * 250 + ".service", "longer than 255"),
])
def test_invalid_unit_names(name: str, fragment: str) -> None:
    rejected_at(config(systemd={"units": [{"name": name}]}), "$.systemd.units.0.name", fragment)


@pytest.mark.parametrize(("contents", "fragment"), [
    ("[Unit\n", "end of section"),
    ("[]\n", "end of section"),
    ("[Unit]\nDescription\n", "expected KEY=VALUE"),
    ("[Unit]\n=x\n", "expected KEY=VALUE"),
    ("Description=x\n[Unit]\n", "outside of a [Section]"),
    ("[Unit]\nA=\0\n", "NUL"),
    ("", "empty unit contents"),
])
def test_invalid_unit_contents(contents: str, fragment: str) -> None:
    rejected_at(config(systemd={"units": [{"name": "a.service", "contents": contents}]}),
                "$.systemd.units.0.contents", fragment)


def test_unit_contents_syntax() -> None:
    contents = ("# comment\n; comment\n\n[Unit]\nDescription = spaced\n[Service]\n"
                "ExecStart=/bin/sh -c \\\n  'echo continued line without equals' \\\n  x\n"
                "Environment=\n")
    parsed = ignition.parse(config(systemd={"units": [{"name": "a.service",
                                                       "contents": contents}]}))
    assert parsed.units[0].contents == contents


def test_unit_combinations() -> None:
    def unit(**fields: Any) -> bytes:
        return config(systemd={"units": [{"name": "a.service", **fields}]})

    rejected_at(unit(mask=True, contents="[Unit]\n"), "$.systemd.units.0.contents", "masked")
    rejected_at(unit(mask=True, enabled=True), "$.systemd.units.0.enabled", "masked")
    rejected_at(unit(mask=True, dropins=[{"name": "a.conf"}]), "$.systemd.units.0.dropins",
                "masked")
    assert problems(unit(mask=True, enabled=False, dropins=[])) == []
    assert problems(unit(mask=False, enabled=True)) == []
    rejected_at(config(systemd={"units": [{"name": "x@.service", "enabled": True}]}),
                "$.systemd.units.0.enabled", "template")
    assert problems(config(systemd={"units": [{"name": "x@.service", "contents": "[Unit]\n"},
                                              {"name": "x@1.service", "enabled": True}]})) == []
    rejected_at(config(systemd={"units": [{"name": "a.service"}, {"name": "b.service"},
                                          {"name": "a.service"}]}),
                "$.systemd.units.2", "duplicate entry defined")


@pytest.mark.parametrize(("name", "fragment"), [
    ("x", "drop-in extension"), (".conf", "drop-in extension"), ("", "drop-in extension"),
    ("a/b.conf", "plain file name"), (".hidden.conf", "plain file name"),
])
def test_invalid_dropin_names(name: str, fragment: str) -> None:
    rejected_at(config(systemd={"units": [{"name": "a.service", "dropins": [{"name": name}]}]}),
                "$.systemd.units.0.dropins.0.name", fragment)


def test_dropins() -> None:
    dropins = [{"name": "a.conf", "contents": "[Service]\nX=1\n"}, {"name": "b.conf"},
               {"name": "a.conf"}]
    rejected_at(config(systemd={"units": [{"name": "a.service", "dropins": dropins}]}),
                "$.systemd.units.0.dropins.2", "duplicate entry defined")
    rejected_at(config(systemd={"units": [{"name": "a.service", "dropins": [
        {"name": "a.conf", "contents": "X=1\n"}]}]}),
        "$.systemd.units.0.dropins.0.contents", "outside of a [Section]")


# ---- accounts ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "root", "_apt", "systemd-network", "Admin", "a" * 31])
def test_valid_account_names(name: str) -> None:
    parsed = ignition.parse(config(passwd={"users": [{"name": name}], "groups": [{"name": name}]}))
    assert parsed.users[0].name == parsed.groups[0].name == name


@pytest.mark.parametrize("name", ["0day", "a b", "a:b", "-a", "a" * 32, "é", "a$", "a.b"])
def test_invalid_account_names(name: str) -> None:
    found = ignition.validate(config(passwd={
        "users": [{"name": "u", "primaryGroup": name, "groups": [name]}, {"name": name}],
        "groups": [{"name": name}]}))
    assert {p.path for p in found} == {
        "$.passwd.users.0.primaryGroup", "$.passwd.users.0.groups.0", "$.passwd.users.1.name",
        "$.passwd.groups.0.name"}


def test_account_rules() -> None:
    def user(**fields: Any) -> bytes:
        return config(passwd={"users": [{"name": "a", **fields}]})

    for uid in (-1, 65535, 4294967295, 2**63):
        rejected_at(user(uid=uid), "$.passwd.users.0.uid", "invalid id")
    assert ignition.parse(user(uid=4294967294)).users[0].uid == 4294967294
    rejected_at(config(passwd={"groups": [{"name": "g", "gid": -5}]}),
                "$.passwd.groups.0.gid", "invalid id")
    rejected_at(user(homeDir="home/a"), "$.passwd.users.0.homeDir", "not absolute")
    rejected_at(user(shell="bash"), "$.passwd.users.0.shell", "not absolute")
    rejected_at(user(gecos="a:b"), "$.passwd.users.0.gecos", "':'")
    rejected_at(user(passwordHash="x\ny"), "$.passwd.users.0.passwordHash", "line breaks")
    rejected_at(config(passwd={"groups": [{"name": "g", "passwordHash": "a:b"}]}),
                "$.passwd.groups.0.passwordHash", "':'")
    rejected_at(user(sshAuthorizedKeys=[" "]), "$.passwd.users.0.sshAuthorizedKeys.0", "empty")
    rejected_at(user(sshAuthorizedKeys=["a", "b", "a"]), "$.passwd.users.0.sshAuthorizedKeys.2",
                "duplicate entry defined")
    rejected_at(user(groups=["x", "x"]), "$.passwd.users.0.groups.1", "duplicate entry")
    rejected_at(user(shouldExist=False, groups=["x"], system=False),
                "$.passwd.users.0.shouldExist", "groups, system given")
    rejected_at(config(passwd={"groups": [{"name": "g", "shouldExist": False, "gid": 5}]}),
                "$.passwd.groups.0.shouldExist", "gid given")
    rejected_at(config(passwd={"users": [{"name": "a"}, {"name": "a"}]}), "$.passwd.users.1",
                "duplicate entry defined")
    rejected_at(config(passwd={"users": [{"uid": 5}]}), "$.passwd.users.0.name", "required")
    # "" is unset for optional strings, as in Ignition.
    parsed = ignition.parse(user(homeDir="", shell="", primaryGroup=""))
    assert (parsed.users[0].home_dir, parsed.users[0].shell) == (None, None)


# ---- structure: types, unknown keys, unsupported sections ------------------------------------


@pytest.mark.parametrize(("sections", "path", "message"), [
    ({"storage": []}, "$.storage", "expected an object, not a list"),
    ({"storage": {"files": {}}}, "$.storage.files", "expected a list, not an object"),
    ({"storage": {"files": ["/a"]}}, "$.storage.files.0", "expected an object, not a string"),
    ({"storage": {"files": [{"path": 1}]}}, "$.storage.files.0.path",
     "expected a string, not an integer"),
    ({"storage": {"files": [{"path": "/a", "mode": 1.5}]}}, "$.storage.files.0.mode",
     "expected an integer, not a number"),
    ({"storage": {"files": [{"path": "/a", "overwrite": 1}]}}, "$.storage.files.0.overwrite",
     "expected a boolean, not an integer"),
    ({"systemd": {"units": [{"name": "a.service", "mask": "true"}]}}, "$.systemd.units.0.mask",
     "expected a boolean, not a string"),
    ({"passwd": {"users": [{"name": "a", "groups": "wheel"}]}}, "$.passwd.users.0.groups",
     "expected a list, not a string"),
    ({"passwd": {"users": [{"name": "a", "sshAuthorizedKeys": [1]}]}},
     "$.passwd.users.0.sshAuthorizedKeys.0", "expected a string, not an integer"),
    ({"storage": {"disks": {}}}, "$.storage.disks", "expected a list, not an object"),
])
def test_type_errors(sections: dict[str, Any], path: str, message: str) -> None:
    assert problems(config(**sections)) == [f"{path}: {message}"]


def test_wrong_type_is_reported_once() -> None:
    assert problems(config(systemd={"units": [{"name": 5}]})) == [
        "$.systemd.units.0.name: expected a string, not an integer"]
    assert problems(config(storage={"links": [{"path": "/a", "target": False}]})) == [
        "$.storage.links.0.target: expected a string, not a boolean"]


def test_unknown_keys() -> None:
    assert problems(config(storage={"files": [{"path": "/a", "contents": {"sourc": "x"}}]},
                           extra=1)) == [
        "$.extra: unknown key 'extra' (not in Ignition spec 3.5.0)",
        "$.storage.files.0.contents.sourc: unknown key 'sourc' (not in Ignition spec 3.5.0)"]


@pytest.mark.parametrize(("sections", "path"), [
    ({"storage": {"disks": [{"device": "/dev/vdb"}]}}, "$.storage.disks"),
    ({"storage": {"raid": [{"name": "md0"}]}}, "$.storage.raid"),
    ({"storage": {"filesystems": [{}]}}, "$.storage.filesystems"),
    ({"storage": {"luks": [{"name": "x"}]}}, "$.storage.luks"),
    ({"ignition": {"config": {"replace": {"source": ""}}}}, "$.ignition.config"),
    ({"ignition": {"config": {"merge": [{}]}}}, "$.ignition.config"),
    ({"ignition": {"proxy": {"noProxy": ["x"]}}}, "$.ignition.proxy"),
    ({"ignition": {"security": {"tls": {"certificateAuthorities": [{"source": "data:,"}]}}}},
     "$.ignition.security"),
    ({"kernelArguments": {"shouldNotExist": ["quiet"]}}, "$.kernelArguments"),
    ({"storage": {"files": [{"path": "/a", "contents": {"source": "https://x",
                                                         "httpHeaders": [{"name": "A"}]}}]}},
     "$.storage.files.0.contents.httpHeaders"),
])
def test_unsupported_sections(sections: dict[str, Any], path: str) -> None:
    [problem] = ignition.validate(config(**sections))
    assert problem.path == path
    assert problem.message.startswith(f"sonix does not support {path[2:].replace('.0', '')} ")


def test_duplicate_keys() -> None:
    data = b'{"ignition": {"version": "3.5.0", "version": "3.5.0"}}'
    assert problems(data) == ["$.ignition.version: key given more than once"]


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "empty config"),
    (b" \n", "empty config"),
    (b"{", "invalid JSON at line 1 column 2"),
    (b'{"a": 1}}', "invalid JSON"),
    (b'{"a": Infinity}', "invalid JSON"),
    (b"\xef\xbb\xbf{}", "invalid JSON"),
    (b"\xff", "not UTF-8"),
    (b"null", "expected an object, not null"),
    (b"3", "expected an object, not an integer"),
    (b"[" * 100000 + b"]" * 100000, ""),
])
def test_malformed_json(data: bytes, fragment: str) -> None:
    [problem] = ignition.validate(data)
    assert problem.path == "$" and fragment in problem.message


def test_unpaired_surrogates() -> None:
    data = b'{"ignition": {"version": "3.5.0"}, "storage": {"files": [{"path": "/a\\ud800"}]}}'
    assert problems(data) == [
        "$.storage.files.0.path: invalid Unicode: an unpaired surrogate (\\ud800 to \\udfff)"]


def test_problems_are_sorted_by_path_and_all_reported() -> None:
    files = [{"path": f"rel{i}"} for i in range(12)]
    found = ignition.validate(config(storage={"files": files}, systemd={"units": [{}]},
                                     passwd={"users": [{}]}))
    assert [p.path for p in found] == [
        "$.passwd.users.0.name",
        *(f"$.storage.files.{i}.path" for i in range(12)),
        "$.systemd.units.0.name"]
    with pytest.raises(ConfigError) as caught:
        ignition.parse(config(storage={"files": files}))
    assert len(caught.value.problems) == 12
    assert str(caught.value).splitlines()[0] == "$.storage.files.0.path: path not absolute"
    assert str(Problem("$.a", "b")) == "$.a: b"


# ---- the module runs on the machine: standard library, Python 3.11 ---------------------------


def test_module_uses_the_standard_library_only() -> None:
    tree = ast.parse(MODULE.read_text(), feature_version=(3, 11))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    assert imported <= sys.stdlib_module_names | {"__future__"}


# ---- sonix provision validate --------------------------------------------------------------


def test_cli_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["provision", "validate", str(VALID[0])]) == 0
    assert capsys.readouterr() == ("", "")


def test_cli_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    fixture = CORPUS / "invalid/many-problems.ign"
    assert cli.main(["provision", "validate", str(fixture)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"{fixture}: {p}" for p in ignition.validate(
        fixture.read_bytes())]
    assert len(err.splitlines()) == 4


def test_cli_reads_stdin(capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b'{"ignition": {"version": "3.0.0"}, "x": 1}'))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert cli.main(["provision", "validate", "-"]) == 1
    assert capsys.readouterr() == ("", "-: $.x: unknown key 'x' (not in Ignition spec 3.0.0)\n")


def test_cli_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["provision", "validate", str(tmp_path / "nope.ign")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"sonix: error: cannot read {tmp_path / 'nope.ign'}: No such file")
    assert "hint:" in err
