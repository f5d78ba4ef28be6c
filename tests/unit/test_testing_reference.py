"""docs/test-driver.md: its API reference is generated from the docstrings and up to date, and
the public Machine API is fully documented."""

from __future__ import annotations

import inspect

from sonix.testing import Machine, reference


def test_every_public_machine_method_has_a_docstring() -> None:
    undocumented = [name for name, m in reference.public_methods(Machine) if not m.__doc__]
    assert undocumented == []


def test_nixos_style_api_is_there() -> None:
    names = {name for name, _ in reference.public_methods(Machine)}
    assert {
        "start", "wait_for_unit", "succeed", "fail", "execute", "wait_until_succeeds",
        "wait_for_open_port", "wait_for_console_text", "reboot", "crash", "shutdown",
        "copy_from_host", "copy_from_machine",
    } <= names


def test_reference_is_up_to_date() -> None:
    current = reference.document().read_text()
    assert current == reference.render(current), (
        "docs/test-driver.md is out of date: run `python -m sonix.testing.reference`"
    )


def test_signatures_drop_self() -> None:
    text = reference.generate()
    assert "#### `succeed(*commands: 'str'" in text or "#### `succeed(*commands: str" in text
    assert "(self" not in text
    assert inspect.cleandoc(Machine.__doc__ or "").splitlines()[0] in text
