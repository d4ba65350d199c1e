"""Phone numbers: mainland mobiles as 11 digits, other E.164 numbers where allowed."""

from __future__ import annotations

import re

__all__ = ["normalize_tel"]

_SEPARATORS = re.compile(r"[\s\-]")
_MAINLAND = re.compile(r"^(?:\+?86)?(1[3-9][0-9]{9})$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normalize_tel(text: str, *, international: bool = False) -> str | None:
    """Return the stored form of a tel, or None if it is not an accepted number."""
    compact = _SEPARATORS.sub("", text.strip())
    if not compact.isascii():
        return None
    mainland = _MAINLAND.match(compact)
    if mainland:
        return mainland.group(1)
    if international and _E164.match(compact) and not compact.startswith("+86"):
        return compact
    return None
