"""Debian control data: deb822 stanzas, dependency fields, version comparison.

Version comparison follows deb-version(7): epoch, then upstream version and Debian revision
compared by alternating non-digit parts (where `~` sorts before everything, even the end) and
numeric parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs (Packages files, `apt-cache show`, .sources). Keys keep their case;
    continuation lines are joined with newlines; `#` comment lines are skipped."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
                current = {}
            continue
        if line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


# ---------------------------------------------------------------------------------------------
# Versions


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch or "0"), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 like dpkg --compare-versions."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _compare_part(ua, ub) or _compare_part(ra, rb)


_RELATIONS = {
    "<<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "=": lambda c: c == 0,
    ">=": lambda c: c >= 0,
    ">>": lambda c: c > 0,
    "<": lambda c: c <= 0,  # obsolete spellings, still accepted by dpkg
    ">": lambda c: c >= 0,
}


# ---------------------------------------------------------------------------------------------
# Relationship fields


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency: `name [(op version)]`, arch qualifier dropped."""

    name: str
    op: str | None = None
    version: str | None = None

    def satisfied_by(self, version: str | None) -> bool:
        """Whether a package (or a `Provides:` with this version, None if unversioned)
        satisfies this relation."""
        if self.op is None:
            return True
        if version is None or self.version is None:
            return False
        return bool(_RELATIONS[self.op](compare_versions(version, self.version)))

    def __str__(self) -> str:
        return self.name if self.op is None else f"{self.name} ({self.op} {self.version})"


_RELATION = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9\-]+)?\s*"
    r"(?:\(\s*(?P<op><<|<=|=|>=|>>|<|>)\s*(?P<version>[^)\s]+)\s*\))?\s*"
    r"(?:\[[^\]]*\])?\s*(?:<[^>]*>\s*)*$"
)


def parse_relations(field: str) -> list[list[Relation]]:
    """`a (>= 1) | b, c:any` → [[a>=1, b], [c]] (a list of clauses, each a list of alternatives)."""
    clauses: list[list[Relation]] = []
    for clause in field.replace("\n", " ").split(","):
        if not clause.strip():
            continue
        alternatives = []
        for alt in clause.split("|"):
            m = _RELATION.match(alt.strip())
            if not m:
                raise ValueError(f"cannot parse dependency {alt.strip()!r}")
            alternatives.append(Relation(m["name"], m["op"], m["version"]))
        clauses.append(alternatives)
    return clauses


def parse_provides(field: str) -> list[tuple[str, str | None]]:
    """`a (= 1), b` → [("a", "1"), ("b", None)]."""
    provided: list[tuple[str, str | None]] = []
    for clause in parse_relations(field):
        for rel in clause:
            provided.append((rel.name, rel.version if rel.op == "=" else None))
    return provided
