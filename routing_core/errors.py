"""Exception hierarchy of routing_core: catch RoutingError to catch them all.

RoutingError
├── ConfigError            a setting is invalid or missing
├── DataError              input data cannot be used (carries the offending rows)
├── ModelError             no model, or a model that cannot be loaded
│   └── ModelCompatibilityError   files changed or library versions differ: retrain
├── TrainingInProgressError       another training holds the lock
├── SourceUnavailableError        a data source's driver or server is missing
└── ExportError            an export was rejected or failed; nothing was written
"""

from __future__ import annotations

from typing import Any


class RoutingError(Exception):
    """Base class of every error raised on purpose by routing_core."""


class ConfigError(RoutingError):
    """A setting is invalid; the message names the setting."""


class DataError(RoutingError):
    """Input data cannot be used.

    ``rows`` is an optional list of dicts describing offending rows
    (each with at least a ``reason`` key).
    """

    def __init__(self, message: str, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []


class ModelError(RoutingError):
    """No usable model is present."""


class ModelCompatibilityError(ModelError):
    """A saved model does not match its manifest or this environment: retrain."""


class TrainingInProgressError(RoutingError):
    """Another training run holds the lock. ``started_at`` is its ISO start time."""

    def __init__(self, message: str, started_at: str | None = None) -> None:
        super().__init__(message)
        self.started_at = started_at


class SourceUnavailableError(RoutingError):
    """A data source cannot be used on this machine (missing driver or server)."""


class ExportError(RoutingError):
    """An export was rejected or failed and wrote nothing.

    ``rows`` lists the offending rows, each a dict with ``row`` and ``reason``.
    """

    def __init__(self, message: str, rows: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []
