"""Skip for want of a real dependency, or fail when CI demands real parts."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def require_real(reason: str) -> NoReturn:
    """Skip, or fail when ``DRIFTLINE_REQUIRE_REAL=1`` (CI)."""
    if os.environ.get("DRIFTLINE_REQUIRE_REAL") == "1":
        pytest.fail(f"DRIFTLINE_REQUIRE_REAL=1 but {reason}", pytrace=False)
    pytest.skip(reason)
