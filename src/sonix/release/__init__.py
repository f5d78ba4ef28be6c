"""Releases and channels: what `sonix release` does after the build.

    image = channel.image_from_build(...)   # the built image, checked (usrhash, UUIDs, UKI)
    staged = channel.stage(image, dir)       # the release's files under temporary names
    channel.publish(dir, staged, keep, sign) # files, signed SHA256SUMS, old releases dropped

`channel` is the layout of docs/updates.md on plain files; `signing` is gpg (the key
directory, trusted.gpg, gpgv). `verify_channel` is the check a machine makes before it takes
anything from a channel, for tests and for people who want to see a channel as machines do.
"""

from __future__ import annotations

from pathlib import Path

from sonix import ui
from sonix.build import BuildResult
from sonix.release import channel, signing


def release_build(result: BuildResult, directory: Path, key: signing.Key,
                  keep: int = channel.DEFAULT_KEEP) -> channel.Published:
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
                published = channel.publish(directory, staged, keep, signing.signer(key))
        finally:
            staged.discard()
    if not published.new:
        ui.info(f"{image.name} {image.version} was published already with the same content")
    for old in published.dropped:
        ui.info(f"dropped {old.name} {old.version} (--keep {keep})")
    ui.info("channel: " + ", ".join(f"{r.name} {r.version}" for r in published.kept))
    return published


def verify_channel(directory: Path, keyring: Path) -> list[str]:
    """Problems a machine would find in the channel (empty: all is well): the signature of
    SHA256SUMS by `gpgv --keyring`, then every listed file's sha256."""
    sums, signature = directory / channel.SUMS, directory / channel.SIGNATURE
    if not sums.is_file() or not signature.is_file():
        return [f"{directory} has no {channel.SUMS} or {channel.SIGNATURE}"]
    if not signing.verify(keyring, sums, signature):
        return [f"gpgv does not accept {signature} with {keyring}"]
    try:
        digests = channel.parse_sums(sums.read_text())
    except ValueError as error:
        return [str(error)]
    problems = []
    for name, digest in digests.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif channel.sha256_file(path) != digest:
            problems.append(f"{name} does not match its {channel.SUMS} line")
    return problems
