"""The maintainer-script replacements (src/sonix/in_nix_build/maintscripts.py) on small trees."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from sonix.in_nix_build import maintscripts
from sonix.in_nix_build.maintscripts import Alternative

POSTINST = Path(__file__).parent / "fixtures" / "debian" / "postinst"


def test_parse_alternatives_with_slaves_and_continuations() -> None:
    (alt,) = maintscripts.parse_alternatives((POSTINST / "mawk").read_text(), "mawk")
    assert alt == Alternative(
        "awk", 5,
        (("/usr/bin/awk", "/usr/bin/mawk"),
         ("/usr/share/man/man1/awk.1.gz", "/usr/share/man/man1/mawk.1.gz"),
         ("/usr/bin/nawk", "/usr/bin/mawk"),
         ("/usr/share/man/man1/nawk.1.gz", "/usr/share/man/man1/mawk.1.gz")),
        "mawk",
    )


def test_parse_alternatives_stops_at_shell_expansion_and_operators() -> None:
    (xz,) = maintscripts.parse_alternatives((POSTINST / "xz-utils").read_text())
    assert xz.links == (("/usr/bin/lzma", "/usr/bin/xz"),)  # the $( … ) slaves are dropped
    (bash,) = maintscripts.parse_alternatives((POSTINST / "bash").read_text())
    assert (bash.name, bash.priority) == ("builtins.7.gz", 10)


def test_choose_alternatives_highest_priority_wins() -> None:
    candidates = [
        *maintscripts.parse_alternatives((POSTINST / "gawk").read_text(), "gawk"),
        *maintscripts.parse_alternatives((POSTINST / "mawk").read_text(), "mawk"),
    ]
    assert maintscripts.choose_alternatives(candidates)["awk"].package == "gawk"


def _package(tmp: Path, name: str) -> Path:
    pkg = tmp / "store" / f"0000-{name}-1.0"
    (pkg / "nix-support" / "debian").mkdir(parents=True)
    (pkg / "nix-support" / "debian" / "postinst").write_text((POSTINST / name).read_text())
    return pkg


def _files(root: Path, *paths: str) -> None:
    for p in paths:
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text(p)


def test_alternatives_become_relative_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _files(root, "usr/bin/mawk", "usr/share/man/man1/mawk.1.gz", "usr/bin/more",
           "usr/share/man/man1/more.1.gz", "usr/bin/pager")
    (root / "usr/bin/pager").unlink()
    (root / "bin").symlink_to("usr/bin")
    made = maintscripts.alternatives(
        root, [_package(tmp_path, "mawk"), _package(tmp_path, "util-linux")]
    )
    assert os.readlink(root / "usr/bin/awk") == "mawk"
    assert os.readlink(root / "usr/share/man/man1/awk.1.gz") == "mawk.1.gz"
    # /bin/more is reached through the usr-merge alias: the link stays inside /usr
    assert os.readlink(root / "usr/bin/pager") == "more"
    assert ("/usr/bin/nawk", "/usr/bin/mawk") in made


def test_alternatives_skip_missing_targets_and_keep_real_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _files(root, "usr/bin/mawk", "usr/bin/nawk")  # no man pages; a real nawk
    maintscripts.alternatives(root, [_package(tmp_path, "mawk")])
    assert (root / "usr/bin/awk").is_symlink()
    assert not (root / "usr/share/man/man1/awk.1.gz").exists()
    assert (root / "usr/bin/nawk").read_text() == "usr/bin/nawk"


def test_passwd_group_from_base_passwd(tmp_path: Path) -> None:
    assert not maintscripts.passwd_group(tmp_path)
    masters = tmp_path / "usr/share/base-passwd"
    masters.mkdir(parents=True)
    (masters / "passwd.master").write_text("root:*:0:0:root:/root:/bin/bash\n")
    (masters / "group.master").write_text("root:*:0:\nshadow:*:42:\n")
    assert maintscripts.passwd_group(tmp_path)
    assert (tmp_path / "etc/passwd").read_text().startswith("root:*:0:0")
    assert (tmp_path / "etc/group").stat().st_mode & 0o777 == 0o644


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv: Sequence[str]) -> None:
        calls.append(list(argv))

    monkeypatch.setattr(maintscripts, "_run", run)
    return calls


def test_ldconfig_depmod_sysusers_commands(tmp_path: Path, commands: list[list[str]]) -> None:
    assert not maintscripts.ldconfig(tmp_path)
    assert maintscripts.depmod(tmp_path) == []
    assert not maintscripts.sysusers(tmp_path)
    assert commands == []
    _files(tmp_path, "usr/lib/x86_64-linux-gnu/libc.so.6", "var/cache/ldconfig/aux-cache",
           "usr/lib/modules/6.12.117+deb13-cloud-amd64/kernel/fs/fat/fat.ko.xz",
           "usr/lib/modules/6.12.0-old/modules.dep",  # leftovers without kernel/: skipped
           "usr/lib/sysusers.d/basic.conf", "etc/passwd-")
    assert maintscripts.ldconfig(tmp_path)
    assert maintscripts.depmod(tmp_path) == ["6.12.117+deb13-cloud-amd64"]
    assert maintscripts.sysusers(tmp_path)
    assert commands == [
        ["ldconfig", "-X", "-r", str(tmp_path)],
        ["depmod", "--all", "--basedir", str(tmp_path), "--moduledir", "/usr/lib/modules",
         "6.12.117+deb13-cloud-amd64"],
        ["systemd-sysusers", f"--root={tmp_path}"],
    ]
    assert not (tmp_path / "var/cache/ldconfig").exists()  # aux-cache is not reproducible
    assert not (tmp_path / "etc/passwd-").exists()


def test_configure_records_shadow_modes(tmp_path: Path, commands: list[list[str]]) -> None:
    _files(tmp_path, "usr/share/base-passwd/passwd.master", "etc/shadow", "etc/gshadow")
    (tmp_path / "usr/share/base-passwd/group.master").write_text("root:*:0:\nshadow:*:42:\n")
    (tmp_path / "nix-support").mkdir()
    (tmp_path / "nix-support/special-modes").write_text("/usr/bin/mount 4755 0 0\n")
    maintscripts.configure(tmp_path, [])
    assert (tmp_path / "nix-support/special-modes").read_text().splitlines() == [
        "/etc/gshadow 0640 0 42",
        "/etc/shadow 0640 0 42",
        "/usr/bin/mount 4755 0 0",
    ]


def test_dpkg_status_from_control_files(tmp_path: Path) -> None:
    dirs = []
    for name in ("mawk", "dash"):
        pkg = tmp_path / "store" / f"0000-{name}-1.0"
        (pkg / "nix-support" / "debian").mkdir(parents=True)
        (pkg / "nix-support" / "debian" / "control").write_text(
            f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n y\n"
        )
        dirs.append(pkg)
    root = tmp_path / "root"
    assert maintscripts.dpkg_status(root, dirs) == 2
    assert (root / "var/lib/dpkg/status").read_text() == (
        "Package: dash\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n"
        "Description: x\n y\n\n"
        "Package: mawk\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n"
        "Description: x\n y\n\n"
    )


UNIX_PROFILE = """\
Name: Unix authentication
Default: yes
Priority: 256
Auth-Type: Primary
Auth:
\t[success=end default=ignore]\tpam_unix.so nullok try_first_pass
Auth-Initial:
\t[success=end default=ignore]\tpam_unix.so nullok
Session-Type: Additional
Session:
\trequired\tpam_unix.so
"""

EXTRA_PROFILE = """\
Name: A second primary module, lower priority
Default: yes
Priority: 128
Auth-Type: Primary
Auth:
\t[success=end default=ignore]\tpam_extra.so use_first_pass
Session-Type: Additional
Session-Interactive-Only: yes
Session:
\toptional\tpam_mkhomedir.so
"""

AUTH_TEMPLATE = """\
# here are the per-package modules (the "Primary" block)
$auth_primary
auth\trequisite\t\t\tpam_deny.so
# and here are more per-package modules (the "Additional" block)
$auth_additional
# end of pam-auth-update config
"""


def test_pam_auth_update_writes_common_files_like_debian(tmp_path: Path) -> None:
    configs, templates = tmp_path / "usr/share/pam-configs", tmp_path / "usr/share/pam"
    configs.mkdir(parents=True)
    templates.mkdir(parents=True)
    (configs / "unix").write_text(UNIX_PROFILE)
    (configs / "extra").write_text(EXTRA_PROFILE)
    (configs / "off").write_text("Name: Off\nDefault: no\nPriority: 999\nAuth-Type: Primary\n"
                                 "Auth:\n\trequired\tpam_off.so\n")
    (templates / "common-auth").write_text(AUTH_TEMPLATE)
    (templates / "common-auth.md5sums").write_text("ignored\n")
    (templates / "common-session").write_text(AUTH_TEMPLATE.replace("auth", "session"))
    (templates / "common-session-noninteractive").write_text(
        AUTH_TEMPLATE.replace("auth", "session"))

    assert maintscripts.pam_auth_update(tmp_path) == [
        "common-auth", "common-session", "common-session-noninteractive"]
    auth = (tmp_path / "etc/pam.d/common-auth").read_text().splitlines()
    # Highest priority first, with its -Initial lines; `end` jumps past the rest of the block.
    assert auth[1:3] == [
        "auth\t[success=2 default=ignore]\tpam_unix.so nullok",
        "auth\t[success=1 default=ignore]\tpam_extra.so use_first_pass",
    ]
    assert "pam_off.so" not in "\n".join(auth)
    session = (tmp_path / "etc/pam.d/common-session").read_text().splitlines()
    # No primary session module: a pam_permit line keeps the stack's jumps intact.
    assert session[1] == "session\t[default=1]\t\t\tpam_permit.so"
    assert session[4:6] == ["session\trequired\tpam_unix.so", "session\toptional\tpam_mkhomedir.so"]
    quiet = (tmp_path / "etc/pam.d/common-session-noninteractive").read_text()
    assert "pam_unix.so" in quiet and "pam_mkhomedir.so" not in quiet


def test_pam_auth_update_without_libpam_runtime_does_nothing(tmp_path: Path) -> None:
    assert maintscripts.pam_auth_update(tmp_path) == []
    assert not (tmp_path / "etc").exists()


def test_base_files_installs_profile_and_motd_once(tmp_path: Path) -> None:
    defaults = tmp_path / "usr/share/base-files"
    defaults.mkdir(parents=True)
    (defaults / "profile").write_text("PATH=/usr/bin\n")
    (defaults / "motd").write_text("welcome\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/motd").write_text("ours\n")
    assert maintscripts.base_files(tmp_path) == ["/etc/profile"]
    assert (tmp_path / "etc/profile").read_text() == "PATH=/usr/bin\n"
    assert (tmp_path / "etc/motd").read_text() == "ours\n"


def test_ca_certificates_bundle_of_every_certificate(tmp_path: Path) -> None:
    store = tmp_path / "usr/share/ca-certificates"
    (store / "mozilla").mkdir(parents=True)
    pem = "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----"
    (store / "mozilla/B_Root.crt").write_text(pem.format("BBB") + "\n")
    (store / "mozilla/A_Root.crt").write_text(pem.format("AAA"))  # no final newline
    (store / "mozilla/not-a-cert.txt").write_text("ignored\n")
    assert maintscripts.ca_certificates(tmp_path) == [
        "2 certificates in /etc/ssl/certs/ca-certificates.crt"]
    conf = (tmp_path / "etc/ca-certificates.conf").read_text().splitlines()
    assert conf[1:] == ["mozilla/A_Root.crt", "mozilla/B_Root.crt"]
    bundle = (tmp_path / "etc/ssl/certs/ca-certificates.crt").read_text()
    # Sorted like the list, each certificate ending with a newline.
    assert bundle == ("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
                      "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n")


def test_ca_certificates_without_the_package_does_nothing(tmp_path: Path) -> None:
    assert maintscripts.ca_certificates(tmp_path) == []
    assert not (tmp_path / "etc").exists()
