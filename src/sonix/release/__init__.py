"""Releases and channels: what `sonix release` does after the build.

    image = channel.image_from_build(...)   # the built image, checked (usrhash, UUIDs, UKI)
    staged = channel.stage(image, dir)       # the release's files under temporary names
    channel.publish(dir, staged, keep, sign) # files, signed SHA256SUMS, old releases dropped
    channel.renew(dir, sign)                 # a new serial and expiry, releases unchanged
    diff_releases(dir, "1", "2")             # what a machine on 1 downloads to reach 2

`channel` is the layout of docs/updates.md on plain files; `signing` is gpg (the key
directory, trusted.gpg, gpgv). `verify_channel` is the check a machine makes before it takes
anything from a channel, for tests and for people who want to see a channel as machines do.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from sonix import ui
from sonix.agents import chunks, records
from sonix.build import BuildResult
from sonix.release import channel, chunking, signing


def release_build(result: BuildResult, directory: Path, key: signing.Key,
                  keep: int = channel.DEFAULT_KEEP,
                  valid_days: float = channel.DEFAULT_VALID_DAYS) -> channel.Published:
    """Add the build's release to the channel directory (created if missing), sign it, and
    drop releases beyond the newest `keep`."""
    if keep < 1:
        raise ui.die(f"--keep must be at least 1 (got {keep})")
    image = channel.image_from_build(result.manifest, result.image, result.uki)
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    with channel.locked(directory):
        # Refused before 100 MB are copied; publish() checks again.
        channel.check_newer(directory, channel.read_releases(directory), image.name,
                            image.version)
        with ui.step(f"Writing {image.name} {image.version} into {directory}"):
            staged = channel.stage(image, directory)
        try:
            with ui.step("Signing SHA256SUMS and publishing"):
                published = channel.publish(directory, staged, keep, signing.signer(key),
                                            valid_days)
        finally:
            staged.discard()
    if not published.new:
        ui.info(f"{image.name} {image.version} was published already with the same content")
    for old in published.dropped:
        ui.info(f"dropped {old.name} {old.version} (--keep {keep})")
    ui.info("channel: " + ", ".join(f"{r.name} {r.version}" for r in published.kept))
    return published


def find_release(releases: list[channel.Release], wanted: str) -> channel.Release:
    """A release by its version, or by `<name>_<version>` when the channel has several
    images."""
    found = [r for r in releases
             if wanted in (r.version, channel.release_stem(r.name, r.version))]
    if len(found) != 1:
        have = ", ".join(channel.release_stem(r.name, r.version) for r in releases) or "none"
        raise ui.die(f"the channel has {'no' if not found else 'more than one'} release "
                     f"{wanted!r} (releases: {have})", hint="give a version, or NAME_VERSION")
    return found[0]


def diff_releases(directory: Path, source: str, target: str) -> chunking.Diff:
    """What a machine on release `source` downloads to reach `target`: the chunks that the
    agent's planning (seeded with the source release's usr image, verity data and UKI, as its
    booted slot and its ESP hold them) does not find, and the target's chunk index."""
    releases = channel.read_releases(directory)
    old, new = find_release(releases, source), find_release(releases, target)
    indexes = {}
    for release in (old, new):
        index = chunking.read_index(directory, release.name, release.version)
        if index is None:
            raise ui.die(f"{release.name} {release.version} has no chunk index in {directory}",
                         hint="it was published by a sonix release older than issue 17")
        indexes[release.version] = index
    files = {r.version: {"usr": directory / r.manifest.usr.file.name,
                         "verity": directory / r.manifest.verity.file.name,
                         "efi": directory / r.manifest.uki.name} for r in (old, new)}
    index_size = (directory / chunks_name(new)).stat().st_size
    return chunking.diff(indexes[old.version], indexes[new.version], files, index_size)


def chunks_name(release: channel.Release) -> str:
    return chunks.index_name(release.name, release.version)


def renew_channel(directory: Path, key: signing.Key,
                  valid_days: float = channel.DEFAULT_VALID_DAYS) -> records.SignedIndex:
    """A new serial and expiry for the channel, its releases unchanged."""
    if valid_days <= 0:
        raise ui.die(f"--valid-days must be positive (got {valid_days})")
    directory = directory.absolute()
    if not directory.is_dir():
        raise ui.die(f"{directory} is not a directory", hint="give the channel directory")
    with channel.locked(directory), ui.step(f"Renewing the signature of {directory}"):
        index = channel.renew(directory, signing.signer(key), valid_days)
    ui.info(f"serial {index.serial}, valid until {index.expires}")
    return index


def verify_channel(directory: Path, keyring: Path) -> list[str]:
    """Problems a machine would find in the channel (empty: all is well): the clearsigned
    index by `gpgv --keyring --output -` (only the text it gives back counts), its serial and
    expiry, then every listed file's sha256, and every chunk that a listed chunk index names;
    and that SHA256SUMS and its detached signature say the same."""
    signed = directory / channel.SIGNED
    if not signed.is_file():
        return [f"{directory} has no {channel.SIGNED} (publish with this sonix release)"]
    text = signing.verify_signed(keyring, signed)
    if text is None:
        return [f"gpgv does not accept {signed} with {keyring}"]
    try:
        index = records.SignedIndex.from_text(text.decode())
    except (ValueError, UnicodeDecodeError) as error:
        return [str(error)]
    problems = []
    if not index.serial:
        problems.append(f"{channel.SIGNED} has no serial and expiry")
    elif (expiry := index.expiry()) is not None and expiry < datetime.datetime.now(
            datetime.UTC):
        problems.append(f"the channel expired at {index.expires} (sonix channel renew)")
    sums, signature = directory / channel.SUMS, directory / channel.SIGNATURE
    if not sums.is_file() or sums.read_bytes() != text:
        problems.append(f"{channel.SUMS} is not the text of {channel.SIGNED}")
    elif not signature.is_file() or not signing.verify(keyring, sums, signature):
        problems.append(f"gpgv does not accept {signature} with {keyring}")
    digests = index.files
    for name, digest in digests.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif channel.sha256_file(path) != digest:
            problems.append(f"{name} does not match its {channel.SUMS} line")
        elif name.endswith(".chunks"):
            try:
                chunk_index = chunks.ChunkIndex.from_bytes(path.read_bytes(), name)
            except records.RecordError as error:
                problems.append(str(error))
            else:
                problems += chunking.check_store(directory, chunk_index)
    return problems
