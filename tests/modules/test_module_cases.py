"""Module-system cases: small Nix files evaluated with `nix-instantiate --eval --strict --json`.

Layout: tests/modules/<feature>/<case>.nix is a case; beside it either
  <case>.json  the exact JSON value the case must evaluate to, or
  <case>.err   text that the error message must contain (after normalisation, see below).
Files a case imports live in tests/modules/<feature>/<case>.d/ (or are shared in
tests/modules/<feature>/_shared/). Cases import the library by relative path
(`import ../../../lib`), so each one runs on its own with
`nix-instantiate --eval --strict --json tests/modules/<feature>/<case>.nix`.
In .err files, `@DIR@` stands for the case's directory (error messages name files).

Error normalisation: Nix prints `error: ` before the first line and indents the following ones;
versions differ in decoration, so both are removed, as are trace lines, before comparing. Newer
Nix versions (2.13 and later) print evaluation frames (`… while evaluating …`, source excerpts)
first and the message last, after its own `error: `: only that last part is kept.

Another Nix can be tried by putting its nix-instantiate first in PATH; the cases must pass with
Nix 2.8 (Debian 12's nix-bin) and with newer ones (checked with 2.26, Debian 13's).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CASES = sorted(p for p in HERE.glob("*/*.nix") if not p.parent.name.startswith("_"))


def normalise_error(stderr: str) -> str:
    lines: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("(use '--show-trace'") or line.startswith("trace: "):
            continue
        line = line.strip()
        if line.startswith("error:"):
            # Where the message starts; anything before it is evaluation frames (newer Nix).
            lines = []
            line = re.sub(r"^error:\s*", "", line)
        lines.append(line)
    return "\n".join(line for line in lines if line)


def normalise_expected(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_module_case(case: Path) -> None:
    expected_json = case.with_suffix(".json")
    expected_err = case.with_suffix(".err")
    assert expected_json.exists() != expected_err.exists(), (
        f"{case}: give exactly one of {expected_json.name} or {expected_err.name}"
    )
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", str(case)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=case.parent,
        check=False,
    )
    if expected_json.exists():
        assert result.returncode == 0, f"{case} failed to evaluate:\n{result.stderr}"
        assert json.loads(result.stdout) == json.loads(expected_json.read_text())
    else:
        assert result.returncode != 0, f"{case} evaluated to {result.stdout} but should fail"
        want = normalise_expected(expected_err.read_text().replace("@DIR@", str(case.parent)))
        got = normalise_error(result.stderr)
        assert want in got, f"expected error text:\n{want}\n\ngot:\n{got}"


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 150, f"only {len(CASES)} module-system cases"
