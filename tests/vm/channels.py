"""Helpers of the update VM tests: a channel served on loopback, and publishing a build."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

from sonix.build import BuildResult
from sonix.release import release_build, signing
from sonix.release.serve import handler_for

# The `update_release` fixture (conftest.py): the build of a release version.
UpdateRelease = Callable[[str], BuildResult]


def serve_directory(directory: Path, requests: list[str] | None = None) -> Iterator[int]:
    """Serve a channel directory on a free loopback port (sonix serve's handler); the path of
    every GET (without its leading `/`) is appended to `requests` when given."""
    base = handler_for(directory)

    class Recording(base):  # type: ignore[valid-type,misc]
        def do_GET(self) -> None:
            if requests is not None:
                requests.append(self.path.lstrip("/"))
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def publish(result: BuildResult, directory: Path, key: signing.Key) -> None:
    release_build(result, directory, key)
