"""Version order as systemd 257 implements the UAPI version format specification
(`systemd-analyze compare-versions`), standard library only: `sonix release` orders a
channel's releases with it and the update agent on the machine decides what is newer with it,
so both sides always agree."""

from __future__ import annotations

import functools
import string


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version a is older than, equal to or newer than b: the UAPI version format
    specification (https://uapi-group.org/specifications/specs/version_format_specification/)
    as systemd 257 implements it (`systemd-analyze compare-versions`), which decides the
    corner cases where the two differ: the unit tests hold pairs checked against it."""
    i = j = 0
    while True:
        # Characters outside the set only separate.
        while i < len(a) and a[i] not in _VERSION_CHARS:
            i += 1
        while j < len(b) and b[j] not in _VERSION_CHARS:
            j += 1
        # `~` (pre-release) sorts lower than anything, even the end of the other string.
        x, y = _at(a, i), _at(b, j)
        if x == "~" or y == "~":
            if x != "~":
                return 1
            if y != "~":
                return -1
            i, j = i + 1, j + 1
        # Otherwise the string with more left is newer.
        if i >= len(a) or j >= len(b):
            return int(i < len(a)) - int(j < len(b))
        # Then `-`, `^` and `.`, in that order: the string with one is older (so `1^` is
        # newer than `1` but older than `1.0` and `1a`: the caret sorts higher than the end).
        for separator in "-^.":
            x, y = _at(a, i), _at(b, j)
            if x == separator or y == separator:
                if x != separator:
                    return 1
                if y != separator:
                    return -1
                i, j = i + 1, j + 1
        x, y = _at(a, i), _at(b, j)
        if x in _DIGITS or y in _DIGITS:
            # A number (even 0) is newer than none; numbers compare as numbers.
            ni, nj = _span(a, i, _DIGITS), _span(b, j, _DIGITS)
            if ni == i or nj == j:
                return 1 if nj == j else -1
            left, right = int(a[i:ni]), int(b[j:nj])
            order = int(left > right) - int(left < right)
        else:
            # Letters compare as ASCII (A < a); a longer run of letters is newer.
            ni, nj = _span(a, i, _LETTERS), _span(b, j, _LETTERS)
            order = int(a[i:ni] > b[j:nj]) - int(a[i:ni] < b[j:nj])
        if order:
            return order
        i, j = ni, nj


_DIGITS = frozenset(string.digits)
_LETTERS = frozenset(string.ascii_letters)
_VERSION_CHARS = _DIGITS | _LETTERS | frozenset("~^.-")


def _at(text: str, index: int) -> str:
    """The character at index, or "" past the end (like C's terminating NUL)."""
    return text[index] if index < len(text) else ""


def _span(text: str, start: int, accept: frozenset[str]) -> int:
    end = start
    while end < len(text) and text[end] in accept:
        end += 1
    return end


version_key = functools.cmp_to_key(compare_versions)
