"""One function per Nix call. Every call goes through `process.run` with the same settings.

Substituters are switched off: nothing outside this machine is reachable, and Nix would
otherwise retry a public binary cache before every build. `NIX_ENV` is the one copy of those
settings (tests/conftest.py puts it into the test session's environment).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonix import paths, process, ui

NIX_ENV = {
    # max-jobs: independent derivations (package unpacking) build in parallel. No sandbox:
    # build steps run the host's /bin/sh and bwrap (Nix's own default is a sandbox, and
    # Debian's nix-bin ships no nix.conf that says otherwise).
    "NIX_CONFIG": "substituters =\nsandbox = false\nwarn-dirty = false\nmax-jobs = auto\n",
    # The module system's own trace output (warnings) should reach the user unchanged.
    "NIX_PATH": "",
}


def _arg_flags(args: Mapping[str, str]) -> list[str]:
    flags: list[str] = []
    for name, value in args.items():
        flags += ["--argstr", name, value]
    return flags


def _nix_error(result: subprocess.CompletedProcess[str], what: str) -> ui.SonixError:
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    # Nix prints "error: ..." followed by the message; keep it whole, drop trace noise.
    text = "\n".join(lines) if lines else f"exit status {result.returncode}"
    return ui.SonixError(f"{what} failed:\n{text}")


def search_path_flags() -> list[str]:
    """The Nix search path of every call: `sonix` is the source root."""
    return ["-I", f"sonix={paths.source_root()}"]


def _run_nix(argv: list[str], what: str) -> str:
    """Run a Nix command that prints its result: its stdout; Nix's warnings are shown, and its
    errors become a SonixError naming `what`. With --debug, Nix shows its traces.

    `<sonix/...>` is this checkout, so that a configuration kept in its own repository
    imports sonix's modules by a stable name (`<sonix/modules/services/nginx.nix>`) with
    no set-up (docs/modules.md)."""
    argv = [argv[0], *search_path_flags(), *argv[1:]]
    if ui.debug_enabled():
        argv = [*argv, "--show-trace"]
    result = process.run(argv, capture=True, check=False, env=NIX_ENV, cwd=paths.source_root())
    if result.returncode != 0:
        raise _nix_error(result, what)
    _print_warnings(result.stderr)
    return result.stdout


def eval_expr_json(expr: str, *, what: str = "evaluation") -> Any:
    """`nix-instantiate --eval --strict --json --expr EXPR`, parsed."""
    argv = ["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr]
    return json.loads(_run_nix(argv, what))


def build(
    file: Path,
    attr: str | None = None,
    args: Mapping[str, str] | None = None,
    *,
    exprs: Mapping[str, str] | None = None,
    out_link: Path | None = None,
    what: str = "build",
) -> list[Path]:
    """`nix-build FILE [-A ATTR]`: the output paths. `args` are strings (--argstr), `exprs`
    Nix expressions (--arg); with `out_link` the result is a GC root at that path."""
    argv: list[str] = ["nix-build", str(file)]
    argv += ["--out-link", str(out_link)] if out_link else ["--no-out-link"]
    if attr:
        argv += ["-A", attr]
    argv += _arg_flags(args or {})
    for name, expr in (exprs or {}).items():
        argv += ["--arg", name, expr]
    return [Path(line) for line in _run_nix(argv, what).split()]


def _print_warnings(stderr: str | None) -> None:
    for line in (stderr or "").splitlines():
        if line.startswith("trace: "):
            ui.info(line.removeprefix("trace: "))


def store_add_fixed(files: Sequence[Path]) -> list[Path]:
    """`nix-store --add-fixed sha256 FILE...`: content-addressed store paths for files."""
    result = process.run(
        ["nix-store", "--add-fixed", "sha256", *map(str, files)], capture=True, env=NIX_ENV
    )
    return [Path(line) for line in result.stdout.split()]


def collect_garbage() -> str:
    """`nix-store --gc`: delete the store paths no GC root reaches (build results a test
    session or `sonix build` linked are roots; fetched .debs and unpacked trees are not, and
    are fetched or built again when next needed). Returns Nix's summary line."""
    result = process.run(["nix-store", "--gc"], capture=True, env=NIX_ENV)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "freed" in line]
    return lines[-1].strip() if lines else "nothing to delete"


def invalid_paths(candidates: Sequence[Path]) -> set[Path]:
    """`nix-store --check-validity --print-invalid PATH...`: those of `candidates` that are
    not valid store paths (one call)."""
    if not candidates:
        return set()
    result = process.run(
        ["nix-store", "--check-validity", "--print-invalid", *map(str, candidates)],
        capture=True,
        env=NIX_ENV,
    )
    return {Path(line) for line in result.stdout.split()}


def nar_size(path: Path) -> int:
    """`nix-store --query --size PATH`: the bytes of the path's NAR serialisation."""
    result = process.run(["nix-store", "--query", "--size", str(path)], capture=True, env=NIX_ENV)
    return int(result.stdout)


def delete(paths: Sequence[str]) -> bool:
    """`nix-store --delete PATH...`: whether Nix deleted them (it refuses, and deletes
    nothing, when one of them is still in use)."""
    result = process.run(
        ["nix-store", "--delete", *paths], capture=True, check=False, env=NIX_ENV
    )
    return result.returncode == 0


def version() -> str:
    """`nix-instantiate --version`, e.g. "nix-instantiate (Nix) 2.26.3"."""
    return process.run(["nix-instantiate", "--version"], capture=True, env=NIX_ENV).stdout.strip()


# Runs argv (its output to /dev/null) and prints "<exit status> <seconds> <peak RSS in KiB>".
# A process's peak RSS counts the memory of the process it was forked from (Linux records the
# forked copy's high-water mark at exec), so measured straight from the CLI (or from pytest,
# some 350 MiB) it would be the caller's size. A small interpreter of its own forks the
# evaluator instead, as GNU time does; its own few MiB are below any evaluation's.
MEASURE_CHILD = """
import os, sys, time
start = time.monotonic()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), time.monotonic() - start, usage.ru_maxrss)
"""


@dataclass(frozen=True)
class EvalFigures:
    """What one measured evaluation took."""

    seconds: float  # wall clock
    peak_rss: int  # bytes, the evaluator's peak resident set


def eval_measured(args: Sequence[str], *, strict: bool = False, what: str) -> EvalFigures:
    """`nix-instantiate --eval [--strict --json] ARGS...` (its output discarded), timed and
    with its peak memory: for benchmarks."""
    argv = ["nix-instantiate", "--eval", *(["--strict", "--json"] if strict else []), *args]
    result = process.run(
        [sys.executable, "-I", "-S", "-c", MEASURE_CHILD, *argv],
        capture=True, check=False, env=NIX_ENV, cwd=paths.source_root(),
    )
    figures = (result.stdout or "").split()
    if result.returncode != 0 or len(figures) != 3 or figures[0] != "0":
        raise ui.SonixError(f"{what} failed:\n{(result.stderr or '').strip()[-2000:]}")
    return EvalFigures(seconds=float(figures[1]), peak_rss=int(figures[2]) * 1024)
