"""Hypothesis profiles, chosen by the environment variable HYPOTHESIS_PROFILE (conftest loads
one before any test module is imported):

- ``thorough`` (the default, and what ``make test`` and CI run): each property test runs the
  number of examples it names through ``examples(n)``, as many as it always ran.
- ``quick`` (``make test-fast``): a tenth of that, at least one, for a fast loop while working.

A test's own ``@settings(max_examples=...)`` would override any profile, so the property
tests name theirs through ``examples(n)``: n at the thorough profile's 100, scaled with the
profile loaded. No deadline in either: a tree built on disk takes as long as the disk does.
"""

from __future__ import annotations

import math
import os

from hypothesis import settings

THOROUGH = 100
"""The thorough profile's max_examples (Hypothesis' own default): the scale ``examples(n)`` reads n at."""

settings.register_profile("thorough", max_examples=THOROUGH, deadline=None)
settings.register_profile("quick", max_examples=THOROUGH // 10, deadline=None)


def load_from_environment() -> str:
    """Load the profile HYPOTHESIS_PROFILE names (thorough if unset); an unknown name fails."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or "thorough"
    settings.load_profile(name)
    return name


def examples(n: int) -> int:
    """``n`` examples under the thorough profile, scaled to the one loaded (never below one)."""
    return max(1, math.ceil(n * settings.default.max_examples / THOROUGH))
