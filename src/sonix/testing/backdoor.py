"""The host side of the test backdoor protocol (the guest side: modules/testing/backdoor.sh).

The guest runs a root shell loop on a virtio serial port named `org.sonix.backdoor` (only
test images have it; see sonix.vm.qemu.BACKDOOR_PORT for why not a virtconsole/hvc0). One
request, one reply:

    host  -> guest   SONIX-RUN <timeout> <length>   (a 64-byte header: padded, ends in \\n)
                     <length bytes: a bash script>
    guest -> host    SONIX-OUT <base64 of the script's stdout>\\n
                     SONIX-ERR <base64 of its stderr>\\n
                     SONIX-STATUS <exit status>\\n

Requests are length-framed: no quoting and no line-length limits (the guest reads header and
script with `head -c`, which never reads past its count; bash's `read` may read ahead).
Output is base64 on one line each, so any bytes pass; the exit status comes on its own line
after the output, never mixed into it. `<timeout>` seconds (0: none) are enforced in the guest
with `timeout --kill-after` (status 124, or 137 when killed). When the loop starts it prints
`SONIX-BACKDOOR-READY`; after a guest reboot it prints it again.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

READY = "SONIX-BACKDOOR-READY"
HEADER_SIZE = 64
OUT, ERR, STATUS = "SONIX-OUT", "SONIX-ERR", "SONIX-STATUS"


class ProtocolError(Exception):
    """The guest's reply does not follow the protocol."""


@dataclass(frozen=True)
class Reply:
    status: int
    stdout: str
    stderr: str


def encode_request(script: str, timeout: int) -> bytes:
    """The bytes that ask the guest to run `script` (bash) with a `timeout` (0: none)."""
    payload = script.encode()
    header = f"SONIX-RUN {max(0, int(timeout))} {len(payload)}".ljust(HEADER_SIZE - 1) + "\n"
    return header.encode() + payload


class ReplyParser:
    """Collects a reply line by line; `feed` returns the Reply when it is complete."""

    def __init__(self) -> None:
        self._stdout: str | None = None
        self._stderr: str | None = None

    def feed(self, line: str) -> Reply | None:
        tag, _, value = line.partition(" ")
        if tag == OUT:
            self._stdout = _decode(value)
        elif tag == ERR:
            self._stderr = _decode(value)
        elif tag == STATUS:
            if self._stdout is None or self._stderr is None:
                raise ProtocolError(f"exit status before the output: {line!r}")
            try:
                status = int(value)
            except ValueError:
                raise ProtocolError(f"bad exit status line: {line!r}") from None
            return Reply(status=status, stdout=self._stdout, stderr=self._stderr)
        # Anything else (a READY line after a guest-side restart, noise) is not part of a reply.
        return None


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
    except binascii.Error as error:
        raise ProtocolError(f"bad base64 in reply ({error})") from None
