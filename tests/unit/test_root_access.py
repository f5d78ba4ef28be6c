"""Becoming root (docs/modules.md, "Becoming root"): no sudo; `su -` with root's password on
the console, root's SSH keys for remote administration."""

from __future__ import annotations

import tomllib

from test_core_modules import EXAMPLES, evaluate, text, usr

from sonix import paths

ROOT_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk0o8rbBtFvGDe6y47mQXnObZ3JyJfBuo7q1cjHVN9e root@laptop"
)


def test_the_minimal_example_gives_root_a_password_for_su() -> None:
    credentials = evaluate(
        str(EXAMPLES / "minimal.nix"),
        "systemd.services.systemd-sysusers.serviceConfig.SetCredential",
    )
    assert any(c.startswith("passwd.hashed-password.root:$6$") for c in credentials)


def test_su_is_in_every_image() -> None:
    """`su` is util-linux's (Debian 13), a root of the `system` package set."""
    sets = tomllib.loads((paths.source_root() / "pkgs" / "packages.toml").read_text())
    assert "util-linux" in sets["sets"]["system"]["roots"]


def test_root_ssh_keys_with_openssh() -> None:
    files = usr(
        "{ imports = [ <sonix/modules/services/openssh.nix> ];"
        " services.openssh.enable = true;"
        f' users.users.root.openssh.authorizedKeys.keys = [ "{ROOT_KEY}" ]; }}'
    )
    assert text(files, "share/factory/etc/ssh/authorized_keys.d/root") == ROOT_KEY + "\n"
    sshd = text(files, "share/factory/etc/ssh/sshd_config")
    assert "PermitRootLogin prohibit-password" in sshd
