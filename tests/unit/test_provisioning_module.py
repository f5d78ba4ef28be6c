"""modules/services/provisioning.nix and boot.initrd.network, evaluated with the fake pkgs of
test_core_modules.py: the initrd unit, networkd in stage 1 only for network sources, the
agent's settings, and the errors."""

from __future__ import annotations

import json

from test_core_modules import error_of, initrd, link, text, usr

from sonix import paths

MODULE = paths.source_root() / "modules/services/provisioning.nix"


def module(settings: str = "") -> str:
    return f"{{ imports = [ {MODULE} ]; provisioning.enable = true; {settings} }}"


def test_the_initrd_unit_runs_the_image_python_and_stops_the_boot_on_errors() -> None:
    files = initrd(module())
    unit = text(files, "lib/systemd/system/sonix-provision.service")
    assert ("ExecStart=/sysroot/usr/lib64/ld-linux-x86-64.so.2 --library-path "
            "/sysroot/usr/lib/x86_64-linux-gnu /sysroot/usr/bin/python3 -I "
            "/sysroot/usr/lib/sonix/sonix-provision --root=/sysroot") in unit
    assert "OnFailure=emergency.target" in unit
    assert "ImportCredential=sonix.provision.*" in unit
    assert "After=" in unit and "sonix-etc-seed.service" in unit
    assert link(files, "lib/systemd/system/initrd.target.wants/sonix-provision.service")
    # Network sources bring networkd into stage 1 (DHCP on every Ethernet interface).
    assert "DHCP=ipv4" in text(files, "lib/systemd/network/80-sonix-initrd.network")
    assert link(files, "lib/systemd/system/initrd.target.wants/systemd-networkd.service")


def test_agents_and_settings_in_usr() -> None:
    files = usr(module('provisioning.everyBoot = [ "matchbox" ]; '
                       'provisioning.onError = "continue";'))
    settings = json.loads(text(files, "lib/sonix/provision.json"))
    assert settings["everyBoot"] == ["matchbox"] and settings["onError"] == "continue"
    assert settings["sources"][:2] == ["cmdline", "credentials"]
    for agent in ("ignition", "metadata", "provision", "__init__"):
        assert files[f"lib/sonix/agents/{agent}.py"]["kind"] == "source"


def test_credentials_only_needs_no_network_and_continue_needs_no_emergency() -> None:
    files = initrd(module('provisioning.sources = [ "credentials" ]; '
                          'provisioning.onError = "continue";'))
    assert "lib/systemd/network/80-sonix-initrd.network" not in files
    assert "OnFailure" not in text(files, "lib/systemd/system/sonix-provision.service")


def test_every_boot_sources_must_be_sources() -> None:
    message = error_of(module('provisioning.sources = [ "ec2" ]; '
                              'provisioning.everyBoot = [ "matchbox" ];'))
    assert ("provisioning.everyBoot names sources that provisioning.sources does not list: "
            "matchbox") in message
