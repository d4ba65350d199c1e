"""The app's time and date formats: `YYYY-M-D H:MM` and `YYYY-M-D`, no zero padding."""

from __future__ import annotations

import functools
from datetime import date, datetime, tzinfo

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "age_on",
    "format_app_date",
    "format_app_time",
    "parse_app_date",
]

#: Seconds, for windows, lifetimes and limits counted on the server's clock.
MINUTE = 60
HOUR = 3600
DAY = 86400


def format_app_time(ts: float, tz: tzinfo) -> str:
    """Format Unix seconds as the app shows them, e.g. `2015-8-4 1:44`."""
    return _minute(int(ts // 60), tz)


@functools.lru_cache(maxsize=8192)
def _minute(minute: int, tz: tzinfo) -> str:
    """The app's time of one minute: a feed shows many times, often the same minutes."""
    d = datetime.fromtimestamp(minute * 60, tz)
    return f"{d.year}-{d.month}-{d.day} {d.hour}:{d.minute:02d}"


def format_app_date(d: date) -> str:
    """Format a date as `YYYY-M-D`."""
    return f"{d.year}-{d.month}-{d.day}"


def parse_app_date(text: str) -> date:
    """Parse `YYYY-M-D` (zero padding allowed); raise ValueError if it is not a real date."""
    parts = text.strip().split("-")
    if len(parts) != 3 or not all(p.isdigit() and 0 < len(p) <= 4 for p in parts):
        raise ValueError("date must be YYYY-M-D")
    year, month, day = (int(p) for p in parts)
    return date(year, month, day)


def age_on(birthday: date, today: date) -> int:
    """Whole years from birthday to today."""
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))
