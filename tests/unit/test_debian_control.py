"""Debian control data: version comparison (as dpkg --compare-versions) and relation fields."""

from __future__ import annotations

import pytest

from sonix.debian import control


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("1.0", "1.0", 0),
        ("1.0", "1.1", -1),
        ("1.10", "1.9", 1),
        ("1.0~rc1", "1.0", -1),  # ~ sorts before the end
        ("1.0~rc1", "1.0~~", 1),
        ("1:1.0", "2.0", 1),  # the epoch wins
        ("0:1.0", "1.0", 0),
        ("257.13-1~deb13u1", "257.13-1", -1),
        ("257.13-1~deb13u1", "257.13-1~deb12u1", 1),
        ("2.41-12+deb13u5", "2.41-12", 1),
        ("1.0-1", "1.0", 1),
        ("1.0a", "1.0+", -1),  # letters sort before non-letters
        ("0.120+deb8u2", "0.148.3", -1),
        ("1.0.0", "1.0", 1),
        ("01", "1", 0),
    ],
)
def test_compare_versions(a: str, b: str, sign: int) -> None:
    result = control.compare_versions(a, b)
    assert (result > 0) - (result < 0) == sign
    reverse = control.compare_versions(b, a)
    assert (reverse > 0) - (reverse < 0) == -sign


def test_parse_relations_alternatives_versions_and_qualifiers() -> None:
    clauses = control.parse_relations(
        "libc6 (>= 2.38), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool,\n"
        " python3:any, foo [amd64] <!nocheck>"
    )
    assert clauses == [
        [control.Relation("libc6", ">=", "2.38")],
        [control.Relation("initramfs-tools", ">=", "0.120+deb8u2"),
         control.Relation("linux-initramfs-tool")],
        [control.Relation("python3")],
        [control.Relation("foo")],
    ]


def test_parse_relations_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        control.parse_relations("libc6 (>= 2.38")


@pytest.mark.parametrize(
    ("relation", "version", "ok"),
    [
        (control.Relation("a"), None, True),
        (control.Relation("a", ">=", "2"), "2", True),
        (control.Relation("a", ">=", "2"), "1.9", False),
        (control.Relation("a", ">=", "2"), None, False),  # unversioned Provides
        (control.Relation("a", "<<", "2"), "2~rc", True),
        (control.Relation("a", "=", "1:2-1"), "1:2-1", True),
        (control.Relation("a", ">>", "2"), "2", False),
    ],
)
def test_relation_satisfied_by(relation: control.Relation, version: str | None, ok: bool) -> None:
    assert relation.satisfied_by(version) is ok


def test_parse_provides() -> None:
    assert control.parse_provides("systemd-sysusers (= 257), awk") == [
        ("systemd-sysusers", "257"),
        ("awk", None),
    ]


def test_parse_stanzas_joins_continuations_and_skips_comments() -> None:
    text = "# c\nPackage: a\nDescription: x\n more\n\n\nPackage: b\n"
    assert control.parse_stanzas(text) == [
        {"Package": "a", "Description": "x\nmore"},
        {"Package": "b"},
    ]
