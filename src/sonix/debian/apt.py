"""A private apt configuration for trixie, and one function per apt call.

The host's apt is never touched: everything (sources, indices, a tiny dpkg status, the download
cache) lives under `<state dir>/apt`, and every call gets `APT_CONFIG` pointing there. The mirror
is the one the host's apt already uses (or `$SONIX_DEBIAN_MIRROR`): the project never names one.

The private dpkg status is empty except for one stub package that `Provides:` the virtual
packages listed under `[stubs]` in pkgs/packages.toml (for example `linux-initramfs-tool`, so
that the kernel does not drag in initramfs-tools: sonix builds its own initrd).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from sonix import paths, process, ui
from sonix.debian import control

SUITE = "trixie"
ARCHITECTURE = "amd64"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR_ENV = "SONIX_DEBIAN_MIRROR"
STUB_PACKAGE = "sonix-stub"


@dataclass(frozen=True)
class Mirror:
    uri: str
    source: str  # where it came from, for error messages (a file name or the variable)


@dataclass(frozen=True)
class AptConfig:
    root: Path
    mirror: Mirror

    @property
    def config_file(self) -> Path:
        return self.root / "apt.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"APT_CONFIG": str(self.config_file), "LC_ALL": "C.UTF-8"}

    @property
    def archives(self) -> Path:
        return self.root / "cache" / "archives"


@dataclass(frozen=True)
class PlannedDownload:
    """One line of `apt-get install --print-uris` (apt 2.6 prints MD5 there: the SHA256 comes
    from the index record instead)."""

    name: str
    version: str
    architecture: str
    file: str
    size: int


# ---------------------------------------------------------------------------------------------
# Which mirror: the host's own configuration


def _is_main_archive(uri: str, suites: Sequence[str]) -> bool:
    # The security archive has its own layout (trixie-security); we want the main archive.
    return not uri.rstrip("/").endswith("-security") and not any(
        s.endswith("-security") for s in suites
    )


def mirrors_from_sources(sources_dir: Path, sources_list: Path) -> list[Mirror]:
    """Debian archive URIs the host's apt uses, in apt's own reading order."""
    found: list[Mirror] = []
    if sources_list.is_file():
        for line in sources_list.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and _is_main_archive(words[1], words[2:3]):
                found.append(Mirror(words[1], str(sources_list)))
    if sources_dir.is_dir():
        for file in sorted(sources_dir.iterdir()):
            if file.suffix == ".list":
                found += mirrors_from_sources(Path("/nonexistent"), file)
            elif file.suffix == ".sources":
                for raw in control.parse_stanzas(file.read_text()):
                    stanza = {k.lower(): v for k, v in raw.items()}
                    if stanza.get("enabled", "yes").lower() == "no":
                        continue
                    if "deb" not in stanza.get("types", "").split():
                        continue
                    suites = stanza.get("suites", "").split()
                    for uri in stanza.get("uris", "").split():
                        if _is_main_archive(uri, suites):
                            found.append(Mirror(uri, str(file)))
    return found


def find_mirror(
    environ: Mapping[str, str] | None = None,
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
    sources_list: Path = Path("/etc/apt/sources.list"),
) -> Mirror:
    """The Debian mirror to use: $SONIX_DEBIAN_MIRROR, else the host's first Debian archive."""
    environ = os.environ if environ is None else environ
    override = environ.get(MIRROR_ENV, "").strip()
    if override:
        return Mirror(override, f"${MIRROR_ENV}")
    found = [
        m
        for m in mirrors_from_sources(sources_dir, sources_list)
        if m.uri.startswith(("http", "file"))
    ]
    # Prefer a URI whose path is a Debian archive root (…/debian) over other repositories.
    debian = [m for m in found if m.uri.rstrip("/").endswith("/debian")]
    if debian:
        return debian[0]
    if found:
        return found[0]
    raise ui.die(
        f"no Debian mirror found in {sources_list} or {sources_dir}/*.sources",
        hint=f"set {MIRROR_ENV} to a Debian archive URI",
    )


# ---------------------------------------------------------------------------------------------
# The private configuration


def _stub_status(provides: Sequence[str]) -> str:
    if not provides:
        return ""
    return (
        f"Package: {STUB_PACKAGE}\n"
        "Status: install ok installed\n"
        "Priority: optional\n"
        "Section: misc\n"
        "Maintainer: sonix <sonix@localhost>\n"
        "Architecture: all\n"
        "Version: 1.0\n"
        f"Provides: {', '.join(sorted(provides))}\n"
        "Description: virtual packages that sonix provides itself (see pkgs/packages.toml)\n\n"
    )


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def configure(
    mirror: Mirror, provides: Sequence[str] = (), root: Path | None = None
) -> AptConfig:
    """Write (idempotently) the private apt configuration and return it."""
    root = root or paths.state_dir() / "apt"
    cfg = AptConfig(root, mirror)
    etc = root / "etc"
    for d in (
        etc / "sources.list.d",
        etc / "preferences.d",
        etc / "apt.conf.d",
        root / "state" / "lists" / "partial",
        root / "cache" / "archives" / "partial",
        root / "status",
        root / "log",
    ):
        d.mkdir(parents=True, exist_ok=True)
    _write_if_changed(
        etc / "sources.list.d" / "trixie.sources",
        f"Types: deb\nURIs: {mirror.uri}\nSuites: {SUITE}\nComponents: main\n"
        f"Signed-By: {KEYRING}\n",
    )
    _write_if_changed(root / "status" / "status", _stub_status(provides))
    # For sets resolved without the stubs (`stubs = false` in pkgs/packages.toml).
    _write_if_changed(root / "status" / "empty", "")
    _write_if_changed(
        cfg.config_file,
        "\n".join(
            [
                f'Dir::Etc "{etc}";',
                'Dir::Etc::SourceList "/dev/null";',
                f'Dir::Etc::SourceParts "{etc}/sources.list.d";',
                'Dir::Etc::Preferences "/dev/null";',
                f'Dir::Etc::PreferencesParts "{etc}/preferences.d";',
                f'Dir::Etc::Parts "{etc}/apt.conf.d";',
                'Dir::Etc::Trusted "/dev/null";',
                'Dir::Etc::TrustedParts "/usr/share/keyrings";',
                f'Dir::State "{root}/state";',
                f'Dir::State::status "{root}/status/status";',
                f'Dir::Cache "{root}/cache";',
                f'Dir::Log "{root}/log";',
                f'APT::Architecture "{ARCHITECTURE}";',
                f'APT::Architectures {{ "{ARCHITECTURE}"; }};',
                'APT::Install-Recommends "false";',
                'APT::Install-Suggests "false";',
                # Downloads go to directories _apt cannot write; root does them without a warning.
                'APT::Sandbox::User "root";',
                'Acquire::Languages "none";',
                'Debug::NoLocking "true";',
                "",
            ]
        ),
    )
    return cfg


# ---------------------------------------------------------------------------------------------
# apt calls


@contextlib.contextmanager
def exclusive(cfg: AptConfig) -> Iterator[None]:
    """One sonix process at a time uses this apt state (apt's own locking is off, since the
    state is private): concurrent runs, e.g. parallel tests, wait here."""
    with (cfg.root / "sonix.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update(cfg: AptConfig) -> None:
    """`apt-get update`: the trixie indices (about 16 MB)."""
    result = process.run(
        ["apt-get", "update", "-q", "-o", "APT::Update::Error-Mode=any"],
        env=cfg.env,
        check=False,
        capture=True,
    )
    failed = result.returncode != 0 or any(
        line.startswith(("E:", "W:", "Err:")) for line in result.stdout.splitlines()
    ) or "E:" in result.stderr
    if failed:
        detail = "\n".join(
            line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith(("E:", "W:", "Err:"))
        )
        raise ui.die(
            f"cannot read the trixie package index from {cfg.mirror.uri} "
            f"(mirror from {cfg.mirror.source}):\n{detail}",
            hint=f"check the network, or set {MIRROR_ENV} to a reachable Debian mirror",
        )


def have_indices(cfg: AptConfig) -> bool:
    lists = cfg.root / "state" / "lists"
    return any(p.name.endswith("_Packages") or "_Packages." in p.name for p in lists.iterdir())


def package_names(cfg: AptConfig) -> set[str]:
    """All real package names in the index (`apt-cache pkgnames`)."""
    result = process.run(["apt-cache", "pkgnames"], env=cfg.env, capture=True)
    return set(result.stdout.split())


_URI_LINE = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) (?P<hash>\S+)$")


def parse_print_uris(text: str) -> list[PlannedDownload]:
    planned: list[PlannedDownload] = []
    for line in text.splitlines():
        m = _URI_LINE.match(line.strip())
        if not m:
            continue
        # The second column is apt's file name: NAME_VERSION_ARCH.deb with an epoch's `:` as
        # %3a (the pool file name in the URI has no epoch at all).
        file = unquote(m["file"])
        stem = file.removesuffix(".deb")
        name, version, arch = stem.split("_")
        planned.append(PlannedDownload(name, version, arch, file, int(m["size"])))
    return planned


def print_uris(
    cfg: AptConfig, packages: Sequence[str], *, stubs: bool = True
) -> list[PlannedDownload]:
    """What `apt-get install` would download for these packages into an empty system (with
    stubs: one whose dpkg status has the stub package, else a truly empty one)."""
    status = [] if stubs else ["-o", f"Dir::State::status={cfg.root / 'status' / 'empty'}"]
    result = process.run(
        ["apt-get", "install", "-y", "-qq", "--print-uris", *status, *packages],
        env=cfg.env,
        capture=True,
        hint="apt could not resolve the package roots in pkgs/packages.toml",
    )
    return parse_print_uris(result.stdout)


def show(cfg: AptConfig, specs: Sequence[str]) -> str:
    """`apt-cache show NAME=VERSION ...`: the index records, deb822."""
    result = process.run(
        ["apt-cache", "show", "--no-all-versions", *specs], env=cfg.env, capture=True
    )
    return result.stdout


def unavailable(cfg: AptConfig, specs: Sequence[str]) -> list[str]:
    """Those of NAME=VERSION specs the mirror does not serve (any more). (`apt-cache show`
    silently skips unknown versions, so compare what it printed with what was asked.)"""
    served = {f"{r['Package']}={r['Version']}" for r in control.parse_stanzas(show(cfg, specs))}
    return [spec for spec in specs if spec not in served]


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """apt writes its progress display to stdout; sonix keeps stdout for results (a command
    like `sonix build` prints only a path there), so apt's stdout goes to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def download(cfg: AptConfig, specs: Sequence[str], dest: Path) -> None:
    """`apt-get download NAME=VERSION ...` into dest: one run (apt downloads in parallel from
    the mirror) with apt's own progress display, on stderr."""
    with _stdout_to_stderr():
        process.run(
            ["apt-get", "download", *specs],
            env=cfg.env,
            cwd=dest,
            hint=f"check the network and the mirror {cfg.mirror.uri} (from {cfg.mirror.source})",
        )
