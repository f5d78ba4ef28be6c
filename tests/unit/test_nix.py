"""sonix.nix: the exact command line of every Nix call (process.run is the one chokepoint)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sonix import nix, paths, process, ui


@dataclass
class Call:
    argv: list[str]
    env: Mapping[str, str] | None
    cwd: Path | None
    check: bool


@dataclass
class FakeRun:
    """process.run: records each call and answers with `stdout`/`stderr`/`status`."""

    stdout: str = ""
    stderr: str = ""
    status: int = 0
    calls: list[Call] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        args = [str(a) for a in argv]
        self.calls.append(Call(args, kw.get("env"), kw.get("cwd"), kw.get("check", True)))
        if kw.get("check", True) and self.status != 0:
            raise ui.SonixError(f"command failed: {args}")
        return subprocess.CompletedProcess(args, self.status, self.stdout, self.stderr)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    run = FakeRun()
    monkeypatch.setattr(process, "run", run)
    monkeypatch.setattr(ui._State, "debug", False)
    return run


# `<sonix/...>` is the checkout in every evaluation and build.
SEARCH_PATH = ["-I", f"sonix={paths.source_root()}"]


def only(fake: FakeRun) -> Call:
    assert len(fake.calls) == 1, fake.calls
    call = fake.calls[0]
    assert call.env == nix.NIX_ENV  # every call: the one set of settings
    return call


def test_eval_expr_json(fake: FakeRun) -> None:
    fake.stdout = '{"a": 1}'
    assert nix.eval_expr_json("{ a = 1; }") == {"a": 1}
    call = only(fake)
    assert call.argv == [
        "nix-instantiate", *SEARCH_PATH, "--eval", "--strict", "--json", "--expr", "{ a = 1; }",
    ]
    assert call.cwd == paths.source_root()


def test_eval_expr_json_with_debug_shows_the_trace(
    fake: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ui._State, "debug", True)
    fake.stdout = "1"
    nix.eval_expr_json("1")
    assert only(fake).argv[-1] == "--show-trace"


def test_build(fake: FakeRun) -> None:
    fake.stdout = "/nix/store/a-x\n/nix/store/b-y\n"
    out = nix.build(
        Path("/src/default.nix"), "config.system.build.image", {"version": "2"},
        exprs={"configuration": "/c.nix"}, out_link=Path("/tmp/result"),
    )
    assert out == [Path("/nix/store/a-x"), Path("/nix/store/b-y")]
    assert only(fake).argv == [
        "nix-build", *SEARCH_PATH, "/src/default.nix", "--out-link", "/tmp/result",
        "-A", "config.system.build.image", "--argstr", "version", "2",
        "--arg", "configuration", "/c.nix",
    ]


def test_build_without_out_link(fake: FakeRun) -> None:
    fake.stdout = "/nix/store/a-x\n"
    nix.build(Path("/src/pkgs"), '"bash"')
    assert only(fake).argv == [
        "nix-build", *SEARCH_PATH, "/src/pkgs", "--no-out-link", "-A", '"bash"',
    ]


def test_build_failure_keeps_nixs_message(fake: FakeRun) -> None:
    fake.status, fake.stderr = 1, "\nerror: attribute 'x' missing\n"
    with pytest.raises(ui.SonixError, match="unpacking failed:\nerror: attribute 'x' missing"):
        nix.build(Path("/src/pkgs"), "x", what="unpacking")


@pytest.mark.parametrize(
    ("call", "stdout", "argv"),
    [
        (lambda: nix.store_add_fixed([Path("/tmp/a.deb"), Path("/tmp/b.deb")]),
         "/nix/store/a\n/nix/store/b\n",
         ["nix-store", "--add-fixed", "sha256", "/tmp/a.deb", "/tmp/b.deb"]),
        (nix.collect_garbage, "", ["nix-store", "--gc"]),
        (lambda: nix.invalid_paths([Path("/nix/store/a"), Path("/nix/store/b")]),
         "/nix/store/b\n",
         ["nix-store", "--check-validity", "--print-invalid", "/nix/store/a", "/nix/store/b"]),
        (lambda: nix.nar_size(Path("/nix/store/a")), "1234\n",
         ["nix-store", "--query", "--size", "/nix/store/a"]),
        (lambda: nix.delete(["/nix/store/a", "/nix/store/b"]), "",
         ["nix-store", "--delete", "/nix/store/a", "/nix/store/b"]),
        (nix.version, "nix-instantiate (Nix) 2.26.3\n", ["nix-instantiate", "--version"]),
    ],
    ids=["store_add_fixed", "collect_garbage", "invalid_paths", "nar_size", "delete", "version"],
)
def test_store_calls(fake: FakeRun, call: Callable[[], object], stdout: str,
                     argv: list[str]) -> None:
    fake.stdout = stdout
    call()
    assert only(fake).argv == argv


def test_results_of_the_store_calls(fake: FakeRun) -> None:
    fake.stdout = "/nix/store/b\n"
    assert nix.invalid_paths([Path("/nix/store/a"), Path("/nix/store/b")]) == {
        Path("/nix/store/b")
    }
    assert nix.invalid_paths([]) == set()  # no call at all
    fake.stdout = "1234\n"
    assert nix.nar_size(Path("/nix/store/a")) == 1234
    assert len(fake.calls) == 2


@pytest.mark.parametrize("strict", [False, True])
def test_eval_measured(fake: FakeRun, strict: bool) -> None:
    fake.stdout = "0 1.5 2048\n"
    figures = nix.eval_measured(["f.nix", "--arg", "n", "10"], strict=strict, what="evaluating")
    assert figures == nix.EvalFigures(seconds=1.5, peak_rss=2048 * 1024)
    flags = ["--strict", "--json"] if strict else []
    call = only(fake)
    assert call.argv == [
        sys.executable, "-I", "-S", "-c", nix.MEASURE_CHILD,
        "nix-instantiate", "--eval", *flags, "f.nix", "--arg", "n", "10",
    ]
    assert call.cwd == paths.source_root()


def test_eval_measured_failure(fake: FakeRun) -> None:
    fake.stdout, fake.stderr = "1 0.2 1000\n", "error: infinite recursion\n"
    with pytest.raises(ui.SonixError, match="evaluating x failed:\nerror: infinite recursion"):
        nix.eval_measured(["x.nix"], what="evaluating x")
