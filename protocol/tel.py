"""Phone numbers: mainland mobiles as 11 digits, other E.164 numbers where allowed."""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["normalize_tel"]

_SEPARATORS = re.compile(r"[\s\-]")
_MAINLAND = re.compile(r"^(?:\+?86)?(1[3-9][0-9]{9})$")
_MAINLAND_NATIONAL = re.compile(r"^1[3-9][0-9]{9}$")
#: How an international number may be spelled: `+` or `00`, digits, spaces, hyphens,
#: dots and parentheses. No letters (phonenumbers would read `+1 800 FLOWERS` as digits),
#: no extensions.
_INTERNATIONAL = re.compile(r"^(?:\+|00)[0-9][0-9 \-.()]*$")
_MAINLAND_CODE = 86


def normalize_tel(text: str, *, international: bool = False) -> str | None:
    """Return the stored form of a tel, or None if it is not an accepted number."""
    compact = _SEPARATORS.sub("", text.strip())
    if not compact.isascii():
        return None
    mainland = _MAINLAND.match(compact)
    if mainland:
        return mainland.group(1)
    if international:
        return _international(text.strip())
    return None


def _international(text: str) -> str | None:
    """An E.164 number however it is spelled (trunk zero, `00`, separators), if valid."""
    if not text.isascii() or not _INTERNATIONAL.match(text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    if number.country_code == _MAINLAND_CODE:
        # A mainland number is a mobile, stored as its 11 digits, however it came.
        national = str(number.national_number)
        return national if _MAINLAND_NATIONAL.match(national) else None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
