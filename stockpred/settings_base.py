"""What every config.json section shares: strict keys, and the YYYYMMDD day rule.

Kept apart from config.py so that packages owning a section (news, generative) can
build on it without importing config.py, which imports them.
"""

from __future__ import annotations

import re
from datetime import date

from pydantic import BaseModel, ConfigDict

_DAY = re.compile(r"^\d{8}$")


class Section(BaseModel):
    """A config section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def parse_day(value: str, what: str) -> str:
    """Check a YYYYMMDD day and return it unchanged."""
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError(f"{what} must be a day written YYYYMMDD, got {value!r}")
    try:
        date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a calendar day") from None
    return value
