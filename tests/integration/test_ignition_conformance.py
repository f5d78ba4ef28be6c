"""sonix's Ignition parser side by side with Debian's ignition-validate (Ignition 2.14, specs
3.0.0 to 3.3.0) over the corpus in tests/fixtures/ignition.

For every config whose declared version Ignition 2.14 knows (3.0.0 to 3.3.0, and every config
with a broken or missing version or broken JSON):
- whatever ignition-validate rejects, sonix rejects;
- where it reports `error at $.x.y`, sonix reports a problem at the same path, or says at an
  enclosing path that it does not support that section at all (`$.storage.disks` covers
  `$.storage.disks.0.device`);
- where it reports a Go type error (`Go struct field File.storage.files.FileEmbedded1.mode`),
  sonix reports a problem at that field (`$.storage.files.N.mode`);
- where sonix rejects and ignition-validate accepts, the config is listed in KNOWN_DIFFERENCES
  with the difference it shows, and docs/ignition.md explains each difference. The table is
  kept honest: a listed config must really be such a case.

ignition-validate comes from the `testing` package set (pkgs/packages.toml), run with its
tree's own libc like etcd (sonix.testing.etcd).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from sonix.agents import ignition
from sonix.debian.trees import tree_command
from sonix.testing.etcd import etcd_tree

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/fixtures/ignition"
DOCS = ROOT / "docs/ignition.md"
NEWER_THAN_IGNITION_2_14 = {"3.4.0", "3.5.0"}

# Configs sonix rejects and ignition-validate accepts, by the difference they show. Each
# difference has a section in docs/ignition.md ("Differences from ignition-validate").
KNOWN_DIFFERENCES = {
    # Keys the spec does not define are errors (ignition-validate: "Unused key" warnings;
    # Go also matches keys case-insensitively, so "Path" works there).
    "unknown-key": "unknown-keys",
    "unknown-key-case": "unknown-keys",
    # Fields newer than the declared spec are errors (ignition-validate: "Unused key").
    "gate-http-headers-3_0": "version-gates",
    "gate-kernel-arguments-3_2": "version-gates",
    "gate-luks-3_1": "version-gates",
    "gate-proxy-3_0": "version-gates",
    "gate-should-exist-3_1": "version-gates",
    # setuid/setgid/sticky bits before spec 3.4.0 are errors (ignition-validate warns).
    "gate-setuid-3_3": "special-mode-bits",
    "gate-sticky-dir-3_0": "special-mode-bits",
    # Only released specs are read (Ignition 2.14 reads 3.4.0-experimental).
    "version-experimental": "experimental-versions",
    # Sections sonix does not implement (Ignition applies them).
    "unsupported-disks": "unsupported-sections",
    "unsupported-filesystems": "unsupported-sections",
    "unsupported-raid": "unsupported-sections",
    "unsupported-luks": "unsupported-sections",
    "unsupported-merge": "unsupported-sections",
    "unsupported-proxy": "unsupported-sections",
    "unsupported-tls": "unsupported-sections",
    "unsupported-kernel-arguments": "unsupported-sections",
    "unsupported-http-headers": "unsupported-sections",
    # tftp:, s3: and gs: sources (Ignition fetches them).
    "unsupported-scheme-tftp": "source-schemes",
    "unsupported-scheme-s3": "source-schemes",
    "unsupported-scheme-gs": "source-schemes",
    # http:// without a hash; URLs without a host.
    "url-http-without-hash": "remote-sources",
    "url-no-host": "remote-sources",
    # data: URLs are decoded at parse time: hash, gzip data and size are checked before
    # anything is applied (Ignition finds out while writing files).
    "hash-mismatch": "inline-contents",
    "hash-mismatch-gzip": "inline-contents",
    "compression-not-gzip": "inline-contents",
    "too-big-gzip": "inline-contents",
    "hash-not-hex": "inline-contents",
    # compression without a source, an appended fragment without a source.
    "compression-without-source": "sourceless-resources",
    "append-without-source": "sourceless-resources",
    # Invalid UTF-8 and NUL characters.
    "json-not-utf8": "text",
    "path-nul": "text",
    # Paths sonix cannot or must not write: /, /usr, below a file; hard links; unit files.
    "path-root": "paths",
    "path-usr": "paths",
    "path-below-file": "paths",
    "path-conflicts-unit": "paths",
    "link-hard-relative-target": "paths",
    "link-hard-into-usr": "paths",
    "link-hard-owner": "paths",
    # Ids and names of owners and accounts.
    "owner-bad-name": "ids-and-names",
    "owner-negative-id": "ids-and-names",
    "group-gid-too-big": "ids-and-names",
    "user-uid-65535": "ids-and-names",
    "user-uid-negative": "ids-and-names",
    "user-bad-name": "ids-and-names",
    "group-bad-name": "ids-and-names",
    "user-no-name": "ids-and-names",
    # Units: systemd's name rules, unit file syntax, contradictory settings.
    "unit-slash": "units",
    "unit-space": "units",
    "dropin-slash": "units",
    "unit-contents-outside-section": "units",
    "unit-contents-empty": "units",
    "unit-mask-contents": "units",
    "unit-mask-dropins": "units",
    "unit-mask-enabled": "units",
    "unit-template-enabled": "units",
    # Account fields that would corrupt passwd/shadow or mean nothing.
    "user-home-relative": "accounts",
    "user-password-hash-colon": "accounts",
    "user-multiline-key": "accounts",
    "user-should-not-exist-with-uid": "accounts",
    # Negative timeouts.
    "timeouts-negative": "timeouts",
}


def declared_version(config: Path) -> str | None:
    try:
        version = json.loads(config.read_bytes())["ignition"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


CONFIGS = sorted(p for p in CORPUS.glob("*/*.ign")
                 if declared_version(p) not in NEWER_THAN_IGNITION_2_14)


@dataclass(frozen=True)
class Verdict:
    """What ignition-validate said about one config."""

    rejected: bool
    paths: list[str]  # `error at $.x.y` paths
    go_fields: list[str]  # Go type errors as schema paths (`storage.files.mode`)
    output: str


@pytest.fixture(scope="module")
def ignition_validate() -> list[str]:
    return tree_command(etcd_tree(), "ignition-validate")


def run_reference(argv: list[str], config: Path) -> Verdict:
    result = subprocess.run([*argv, str(config)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode in (0, 1), f"ignition-validate failed: {output}"
    paths = re.findall(r"^error at (\$[^,]*),", output, re.MULTILINE)
    go_fields = [go_field_path(m) for m in re.findall(r"Go struct field (\S+) of type", output)]
    return Verdict(result.returncode == 1, paths, go_fields, output)


def go_field_path(field: str) -> str:
    """`File.storage.files.FileEmbedded1.mode` → `storage.files.mode`: the struct type first,
    then JSON names and embedded struct names (Node, FileEmbedded1)."""
    parts = field.split(".")[1:]
    return ".".join(p.lower() for p in parts if not re.fullmatch(r"Node|\w+Embedded\d+", p))


def schema_path(path: str) -> str:
    """`$.storage.files.0.mode` → `storage.files.mode`."""
    return ".".join(p.lower() for p in path.split(".")[1:] if not p.isdigit())


def covered(path: str, problems: list[ignition.Problem]) -> bool:
    return any(p.path == path or (path.startswith(p.path + ".") and
                                  p.message.startswith("sonix does not support"))
               for p in problems)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_conformance(config: Path, ignition_validate: list[str]) -> None:
    reference = run_reference(ignition_validate, config)
    problems = ignition.validate(config.read_bytes())
    ours = "\n".join(str(p) for p in problems) or "(accepted)"
    if reference.rejected:
        assert problems, f"ignition-validate rejects, sonix accepts:\n{reference.output}"
    for path in reference.paths:
        assert covered(path, problems), f"no problem at {path}:\n{reference.output}\n{ours}"
    for field in reference.go_fields:
        assert any(schema_path(p.path) == field for p in problems), (
            f"no problem at {field}:\n{reference.output}\n{ours}")
    if problems and not reference.rejected:
        assert config.stem in KNOWN_DIFFERENCES, (
            f"sonix rejects, ignition-validate accepts ({reference.output.strip()}); if "
            f"intended, list it in KNOWN_DIFFERENCES and docs/ignition.md:\n{ours}")
    if config.stem in KNOWN_DIFFERENCES:
        assert problems and not reference.rejected, "listed in KNOWN_DIFFERENCES, but is not one"


def test_known_differences_are_in_the_corpus_and_documented() -> None:
    compared = {p.stem for p in CONFIGS if p.parent.name == "invalid"}
    assert set(KNOWN_DIFFERENCES) <= compared
    docs = DOCS.read_text()
    for difference in sorted(set(KNOWN_DIFFERENCES.values())):
        assert f'<a id="{difference}"></a>' in docs, f"docs/ignition.md: no {difference}"


def test_the_reference_knows_specs_3_0_to_3_3(ignition_validate: list[str],
                                              tmp_path: Path) -> None:
    """The corpus split assumes Ignition 2.14: 3.3.0 is its newest released spec."""
    config = tmp_path / "config.ign"
    for version, accepted in (("3.0.0", True), ("3.3.0", True), ("3.4.0", False)):
        config.write_text(json.dumps({"ignition": {"version": version}}))
        assert run_reference(ignition_validate, config).rejected is not accepted
