"""The registry's errors.

DriftlineError
└── RegistryError
    ├── NotFound            no such model, version, run or alias
    ├── AliasConflict       a compare-and-set alias move found another version
    ├── FrozenModel         an automatic move on a frozen model
    ├── SpecConflict        the same stream version recorded with other content
    └── RegistryUnavailable the registry (or its database) did not answer in time
"""

from __future__ import annotations

from services.common.errors import DriftlineError


class RegistryError(DriftlineError):
    """Root of the registry's errors."""


class NotFound(RegistryError):
    """No such model, version, run or alias."""


class AliasConflict(RegistryError):
    """A compare-and-set move expected one version and found another."""

    def __init__(self, model: str, alias: str, expected: object, actual: int | None) -> None:
        self.actual = actual
        super().__init__(
            f"{model}@{alias} is at {_v(actual)}, not {expected}: someone moved it first"
        )


class FrozenModel(RegistryError):
    """Automatic moves are refused on a frozen model."""


class SpecConflict(RegistryError):
    """A stream config version already recorded with different content."""


class RegistryUnavailable(RegistryError):
    """The registry service or its database is unreachable; the call may be retried."""


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"
