"""The update agent's Secure Boot check (issue 15) with real tools and real PE files: UKIs made
by ukify from the locked trixie tools, signed with sbsign by the owner's db key or by another
owner's, one changed by a byte after signing, one unsigned; the agent's sbverify call
(update.check_signature, the one install() makes before it writes anything) run from the
tools tree. The order of the steps in a whole install is tests/unit/test_agent_faults.py's."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sonix import process
from sonix.agents import common, records, uki, update
from sonix.release.signing import tools_runner


@dataclass(frozen=True)
class Ukis:
    directory: Path
    owner: Path  # the db certificate of this machine

    def __getitem__(self, name: str) -> Path:
        return self.directory / f"{name}.efi"


def in_tools(directory: Path, script: str) -> None:
    result = process.run([tools_runner(), "--rw", str(directory), "--", "sh", "-euc",
                          f"cd {directory}; {script}"], capture=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def ukis() -> Iterator[Ukis]:
    # Beside pytest's tree, not in it: the tools sandbox binds the directory by its path.
    directory = Path(tempfile.mkdtemp(prefix="sonix-agent-sb-", dir="/tmp"))
    in_tools(directory, """
        for who in owner foreign; do
            openssl req -new -x509 -newkey rsa:2048 -nodes -days 30 \
                -subj "/CN=sonix test $who db/" -keyout $who.key -out $who.crt 2>/dev/null
        done
        head -c 65536 /dev/urandom > linux
        head -c 32768 /dev/urandom > initrd
        ukify build --linux=linux --initrd=initrd --uname=6.12.0-test \
            --cmdline="rw console=ttyS0 usrhash=$(printf %064d 2)" --output=unsigned.efi
        sbsign --key owner.key --cert owner.crt --output signed.efi unsigned.efi
        sbsign --key foreign.key --cert foreign.crt --output foreign.efi unsigned.efi
    """)
    # One byte of the signed command line changed: the signature is over the old one.
    signed = (directory / "signed.efi").read_bytes()
    with (directory / "signed.efi").open("rb") as f:
        offset, _ = uki.sections(f)[".cmdline"]
    changed = bytearray(signed)
    changed[offset] ^= ord("r") ^ ord("R")
    (directory / "changed.efi").write_bytes(bytes(changed))
    yield Ukis(directory, directory / "owner.crt")
    shutil.rmtree(directory)


@pytest.fixture
def sbverify(ukis: Ukis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent runs /usr/bin/sbverify on the machine; here the tools tree's, which sees the
    UKIs and the test's own directory (where the agent downloads to)."""
    wrapper = tmp_path / "sbverify"
    wrapper.write_text(f'#!/bin/sh\nexec {tools_runner()} --ro {ukis.directory} --ro {tmp_path} '
                       '-- sbverify "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(update, "SBVERIFY", wrapper)


def test_the_files_are_what_the_tests_say(ukis: Ukis) -> None:
    assert uki.cmdline(ukis["signed"]).startswith("rw console=ttyS0 usrhash=")
    assert uki.cmdline(ukis["changed"]).startswith("Rw console=ttyS0 usrhash=")
    assert uki.boot_digests(ukis["signed"]) == uki.boot_digests(ukis["foreign"])


@pytest.mark.usefixtures("sbverify")
def test_a_uki_signed_by_the_owner_is_accepted(ukis: Ukis) -> None:
    update.check_signature(ukis["signed"], ukis.owner, "sonix_2.efi")


@pytest.mark.usefixtures("sbverify")
@pytest.mark.parametrize(("name", "why"), [
    ("foreign", "Signature verification failed"),   # another owner's db key
    ("changed", "Image fails hash check"),          # one byte changed after signing
    ("unsigned", "No signature table present"),
])
def test_anything_else_is_refused(ukis: Ukis, name: str, why: str) -> None:
    with pytest.raises(update.UpdateError) as error:
        update.check_signature(ukis[name], ukis.owner, "sonix_2.efi")
    message = str(error.value)
    assert message.startswith(f"sonix_2.efi is not signed by this machine's db certificate "
                              f"({ukis.owner}): not installed"), message
    assert why in message, message


@pytest.fixture
def channel(ukis: Ukis) -> Iterator[str]:
    """The UKIs served over HTTP on loopback, as a channel serves release files."""
    directory = ukis.directory

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.usefixtures("sbverify")
@pytest.mark.parametrize("name", ["signed", "foreign", "changed"])
def test_the_download_is_checked_where_nothing_boots(ukis: Ukis, channel: str, tmp_path: Path,
                                                     name: str) -> None:
    """fetch_signed_uki: downloaded into the private directory, checked there; what the ESP
    copy is made from only when the owner signed it."""
    data = ukis[name].read_bytes()
    spec = records.FileSpec(f"{name}.efi", len(data), hashlib.sha256(data).hexdigest())
    cfg = update.Config(name="sonix", channel=channel, keyrings=(), tries=3,
                        strategy="immediate", activation="reboot", window=None,
                        fleet_lock_url="", fleet_lock_group="default",
                        secure_boot_certificate=str(ukis.owner))
    with update.incoming_directory(tmp_path / "state") as incoming:
        deadline = common.Deadline.after(60)
        if name == "signed":
            verified = update.fetch_signed_uki(cfg, spec, incoming, deadline)
            assert verified.parent == incoming and verified.read_bytes() == data
        else:
            with pytest.raises(update.UpdateError, match="is not signed by this machine's db"):
                update.fetch_signed_uki(cfg, spec, incoming, deadline)
    assert not (tmp_path / "state/incoming").exists()
