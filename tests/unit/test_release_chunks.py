"""The host's half of delta updates (sonix.release.chunking): content-defined cuts, the chunk
index and store that `sonix release` writes, pruning with --keep, and `sonix release diff`."""

from __future__ import annotations

import hashlib
import random
import zlib
from pathlib import Path

import pytest
from test_release import FakeSigner, fake_image, listing, release

from sonix import cli, ui
from sonix.agents import chunks
from sonix.release import channel, chunking, diff_releases


def stored(directory: Path) -> set[str]:
    return {p.name.removesuffix(chunks.SUFFIX) for p in (directory / chunks.STORE).glob("*/*")}


def test_cuts_follow_content_not_offsets() -> None:
    """Bytes inserted at the start change the first chunk or two; the rest are the same."""
    data = random.Random(1).randbytes(2 << 20)
    before = [data[o:o + n] for o, n in chunking.cut(data)]
    shifted = b"an inserted line\n" + data
    after = [shifted[o:o + n] for o, n in chunking.cut(shifted)]
    assert b"".join(after) == shifted
    assert all(chunking.MINIMUM <= len(c) <= chunking.MAXIMUM for c in before[:-1])
    assert len(set(after) - set(before)) <= 2
    assert 0.5 * len(data) / chunking.AVERAGE < len(before) < 2 * len(data) / chunking.AVERAGE


def test_chunk_file_stores_each_chunk_once(tmp_path: Path) -> None:
    data = random.Random(2).randbytes(300_000)
    source = tmp_path / "file"
    source.write_bytes(data + data)  # every chunk twice (but the ones across the seam)
    created: list[Path] = []
    part = chunking.chunk_file(source, tmp_path, created)
    assert part.size == 600_000 and part.sha256 == hashlib.sha256(data + data).hexdigest()
    assert len(created) == len({c.sha256 for c in part.chunks}) < len(part.chunks)
    for chunk in part.chunks:
        raw = (tmp_path / chunks.chunk_path(chunk.sha256)).read_bytes()
        assert len(raw) == chunk.stored
        chunks.decompress(raw, chunk)
    again: list[Path] = []
    assert chunking.chunk_file(source, tmp_path, again) == part
    assert again == []


def test_a_damaged_stored_chunk_is_written_again(tmp_path: Path) -> None:
    piece = b"sonix " * 3000
    sha = hashlib.sha256(piece).hexdigest()
    created: list[Path] = []
    size = chunking.store_chunk(tmp_path, sha, piece, created)
    path = tmp_path / chunks.chunk_path(sha)
    path.write_bytes(b"damaged")
    assert chunking.store_chunk(tmp_path, sha, piece, created) == size
    assert zlib.decompress(path.read_bytes()) == piece


def test_the_release_has_a_signed_chunk_index_of_its_usr_image_and_uki(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out)
    sums = channel.parse_sums((out / channel.SUMS).read_text())
    index_file = out / "sonix_2.chunks"
    assert sums["sonix_2.chunks"] == hashlib.sha256(index_file.read_bytes()).hexdigest()
    index = chunks.ChunkIndex.from_bytes(index_file.read_bytes())
    manifest = channel.read_releases(out)[0].manifest
    assert (index.parts["usr"].size, index.parts["usr"].sha256) == (
        manifest.usr.file.size, manifest.usr.file.sha256)
    assert (index.parts["efi"].size, index.parts["efi"].sha256) == (
        manifest.uki.size, manifest.uki.sha256)
    assert (index.parts["verity"].size, index.parts["verity"].sha256) == (
        manifest.verity.file.size, manifest.verity.file.sha256)
    # Chunks are addressed by their hash through the signed index, not listed in SHA256SUMS.
    assert not [name for name in sums if name.startswith("chunks/")]
    assert stored(out) == chunking.used_chunks([index])


def test_check_store_finds_missing_and_damaged_chunks(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, usr_blocks=40)
    index = chunking.read_index(out, "sonix", "2")
    assert index is not None and chunking.check_store(out, index) == []
    first, second = (chunks.chunk_path(c.sha256) for c in index.parts["usr"].chunks[:2])
    (out / first).unlink()
    (out / second).write_bytes(b"x")
    problems = chunking.check_store(out, index)
    assert problems[0] == f"{first} is missing"
    assert problems[1].startswith(f"{second}: chunk ")


def test_keep_prunes_chunks_no_kept_release_uses(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    for version, fill in (("1", 1), ("2", 2), ("3", 2)):
        release(tmp_path, out, keep=2, version=version, fill=fill, usr_blocks=40)
    kept = [chunking.read_index(out, "sonix", v) for v in ("2", "3")]
    assert not (out / "sonix_1.chunks").exists()
    assert stored(out) == chunking.used_chunks([i for i in kept if i is not None])


def test_a_release_published_before_issue_17_keeps_working(tmp_path: Path) -> None:
    """A channel whose old release has no chunk index: renewing and releasing still work,
    and the old release's absence only means no delta from it."""
    out = tmp_path / "channel"
    release(tmp_path, out, version="1")
    (out / "sonix_1.chunks").unlink()
    with channel.locked(out):
        channel.renew(out, FakeSigner(out))
    release(tmp_path, out, version="2", fill=2)
    assert "sonix_1.chunks" not in channel.parse_sums((out / channel.SUMS).read_text())
    with pytest.raises(ui.SonixError, match="sonix 1 has no chunk index"):
        diff_releases(out, "1", "2")


def test_a_failed_release_leaves_no_new_chunks(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1")
    before = listing(out)
    manifest, disk, uki = fake_image(tmp_path, version="2", fill=7, usr_blocks=30)
    with channel.locked(out):
        staged = channel.stage(channel.image_from_build(manifest, disk, uki), out)
        assert staged.chunks
        staged.discard()
    assert listing(out) == before


def test_diff_counts_what_the_agent_would_fetch(tmp_path: Path) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1", fill=3, usr_blocks=200)
    release(tmp_path, out, version="2", fill=3, usr_blocks=200)  # the same usr, another UKI
    release(tmp_path, out, version="3", fill=4, usr_blocks=200)  # every byte changed
    same = diff_releases(out, "1", "2")
    new = {r.version: r.manifest for r in channel.read_releases(out)}["2"]
    assert same.full == new.usr.file.size + new.uki.size + new.verity.file.size
    index_size = (out / "sonix_2.chunks").stat().st_size
    assert same.delta == same.chunk_bytes + index_size
    assert same.seeded >= new.usr.file.size  # the whole usr image from the booted slot
    assert same.chunk_bytes < new.uki.size
    other = diff_releases(out, "2", "3")
    assert other.seeded < same.seeded and other.chunk_bytes > same.chunk_bytes
    assert diff_releases(out, "sonix_1", "sonix_2") == same
    with pytest.raises(ui.SonixError, match="no release '9'"):
        diff_releases(out, "9", "2")


def test_the_diff_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "channel"
    release(tmp_path, out, version="1", fill=3, usr_blocks=50)
    release(tmp_path, out, version="2", fill=3, usr_blocks=50)
    assert cli.main(["release", "diff", str(out), "1", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["chunks", "delta", "full", "ratio"]
    result = diff_releases(out, "1", "2")
    assert lines[1].split()[1] == str(result.delta)
    assert lines[3] == f"ratio:   {100 * result.ratio:.2f} %"
    assert cli.main(["release", "examples/minimal.nix", "extra", "--channel", str(out)]) == 1
    assert "unexpected arguments: extra" in capsys.readouterr().err
