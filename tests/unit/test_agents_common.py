"""The agents' shared primitives (src/sonix/agents/common.py): one log line per message with
control characters escaped, the atomic and durable write that leaves nothing behind when it
fails and never writes through a planted link, and run() with its timeout. The HTTP client is
tested against hostile servers in tests/integration/test_bounded_downloads.py."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sonix.agents import common


@pytest.mark.parametrize(
    ("message", "lines"),
    [
        ("plain", ["<6>tag: plain"]),
        ("id=web\r<3>tag: forged", ["<6>tag: id=web\\r<3>tag: forged"]),
        ("a\x1b[31mred", ["<6>tag: a\\x1b[31mred"]),
        ("nul\x00", ["<6>tag: nul\\x00"]),
        ("gpgv says:\nBAD signature", ["<6>tag: gpgv says:", "<6>tag: BAD signature"]),
        ("tab\there", ["<6>tag: tab\\there"]),
        ("unicode é ✓", ["<6>tag: unicode é ✓"]),
    ],
)
def test_a_log_line_cannot_be_forged(message: str, lines: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    common.Logger("tag")(message)
    assert capsys.readouterr().err.splitlines() == lines


def test_the_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    common.write_atomic(target, b"new", 0o600)
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    real_fsync = os.fsync
    calls = []

    def full_disk(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:  # the file's own fsync: where a full disk shows on some systems
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        common.write_atomic(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_planted_link_at_the_name_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/state.json").symlink_to(victim)
    common.write_atomic(tmp_path / "dir/state.json", b"{}")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "dir/state.json").is_symlink()


def test_names_that_are_not_file_names_are_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for bad in ("", ".", "..", "a/b"):
            with pytest.raises(ValueError, match="not a file name"):
                common.write_atomic_at(fd, bad, b"x")
    finally:
        os.close(fd)


def test_run_has_a_timeout_and_says_what_failed() -> None:
    assert common.run(["echo", "hi"], timeout=10).stdout == "hi\n"
    with pytest.raises(common.CommandError, match=r"sleep 5: no result after 1 s"):
        common.run(["sleep", "5"], timeout=1)
    with pytest.raises(common.CommandError, match=r"exit status 1: oops"):
        common.run(["sh", "-c", "echo oops >&2; exit 1"], timeout=10)
    with pytest.raises(common.CommandError, match=r"no-such-command-here"):
        common.run(["no-such-command-here"], timeout=10)
