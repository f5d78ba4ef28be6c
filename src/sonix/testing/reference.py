"""The test driver's API reference, generated from the docstrings into docs/test-driver.md.

    python -m sonix.testing.reference            # rewrite the generated part of the document
    python -m sonix.testing.reference --check    # exit 1 when the document is out of date

Only the part between the two markers is generated; the rest of docs/test-driver.md is
written by hand. tests/unit/test_testing_reference.py keeps the two in step.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sonix import paths
from sonix.testing import driver, machine
from sonix.testing.retry import WaitTimeout, retry

BEGIN = "<!-- BEGIN GENERATED: python -m sonix.testing.reference -->"
END = "<!-- END GENERATED -->"


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "")


def _signature(name: str, func: Callable[..., Any]) -> str:
    # eval_str: show `float | None`, not the string annotations of `from __future__ import …`
    text = str(inspect.signature(func, eval_str=True))
    signature = text.replace("(self, ", "(").replace("(self)", "()")
    for prefix in ("sonix.testing.machine.", "sonix.vm.", "pathlib.", "collections.abc."):
        signature = signature.replace(prefix, "")
    return f"{name}{signature}"


def public_methods(cls: type) -> list[tuple[str, Callable[..., Any]]]:
    """Public methods defined by `cls` itself, in source order."""
    methods = [
        (name, member)
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member)
    ]
    return sorted(methods, key=lambda item: inspect.getsourcelines(item[1])[1])


def _class_section(cls: type, title: str) -> list[str]:
    lines = [f"### `{title}`", "", _doc(cls), ""]
    for name, method in public_methods(cls):
        lines += [f"#### `{_signature(name, method)}`", "", _doc(method), ""]
    return lines


def generate() -> str:
    """The generated Markdown (between the markers)."""
    lines = ["## API reference", ""]
    lines += _class_section(machine.Machine, "Machine(name, state_dir, *, …)")
    lines += _class_section(driver.Driver, "Driver(state_dir, *, max_running=2)")
    lines += [
        f"### `{_signature('driver_for', driver.driver_for)}`", "", _doc(driver.driver_for), "",
        f"### `{_signature('retry', retry)}`", "", _doc(retry), "",
        "### Exceptions", "",
    ]
    for exc in (machine.MachineError, machine.CommandFailed, machine.UnitFailed,
                WaitTimeout):
        base = exc.__mro__[1].__name__
        lines.append(f"- `{exc.__name__}({base})`: {_doc(exc)}")
    return "\n".join(lines).rstrip() + "\n"


def document() -> Path:
    return paths.source_root() / "docs" / "test-driver.md"


def render(current: str) -> str:
    """`current` with its generated part replaced."""
    head, begin, rest = current.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{document()}: the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n\n{generate()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = document()
    current = path.read_text()
    wanted = render(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{path} is out of date: run python -m sonix.testing.reference", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
