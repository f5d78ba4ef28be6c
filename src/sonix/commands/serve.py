"""`sonix serve DIR`: a channel over HTTP (sonix.release.serve); prints the URL on stdout
once listening, logs requests to stderr."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import re
from pathlib import Path

from sonix import ui
from sonix.httpguard import REQUEST_TIMEOUT, positive_seconds
from sonix.release.serve import make_server, server_url


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[IPV6]:PORT` (port 0: any free port); `sonix fleetlock-server` too."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\[\]]+):([0-9]{1,5})", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT or [IPV6]:PORT, not {text!r}")
    host = match[1] or match[3]
    port = int(match[2] or match[4])
    if match[1]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{host!r} is not an IPv6 address") from None
    if port > 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range")
    return host, port


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a channel directory over HTTP (byte ranges, no listings)",
        description="Serves the files of DIR over HTTP for tests and small sites, with byte "
        "ranges so downloads resume. Any static web server serves a channel just as well. "
        "Prints the URL once listening; logs requests to stderr.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="the channel directory")
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 8000),
                        metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:8000; port 0: any)")
    parser.add_argument("--request-timeout", metavar="SECONDS", type=positive_seconds,
                        default=REQUEST_TIMEOUT,
                        help="seconds a client has for each request before the connection is "
                        f"closed (default {REQUEST_TIMEOUT:g})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        raise ui.die(f"{directory} is not a directory",
                     hint="give a channel directory (sonix release --channel DIR)")
    host, port = args.listen
    try:
        server = make_server(directory, host, port, request_timeout=args.request_timeout)
    except OSError as error:
        raise ui.die(f"cannot listen on {host}:{port}: {error.strerror}",
                     hint="choose another address with --listen") from None
    with server:
        print(server_url(server), flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends serving, not an error
            server.serve_forever()
    return 0
