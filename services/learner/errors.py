"""The learner's errors.

DriftlineError
└── LearnerError
    ├── ModelSpecError      a model pipeline that is not allowed or cannot be built (names it)
    └── DriftPolicyError    a drift detector or parameter that is not allowed (names it)
"""

from __future__ import annotations

from services.common.errors import DriftlineError


class LearnerError(DriftlineError):
    """Root of the learner's errors."""


class ModelSpecError(LearnerError):
    """The stream's ``model`` section names a class or parameter that cannot be used."""


class DriftPolicyError(LearnerError):
    """The stream's ``policy.drift`` names a detector parameter that cannot be used."""
