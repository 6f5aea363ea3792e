"""Validation of raw ERP views into the typed contract of ``schema`` (INTERFACE STUB).

TODO: implementation in progress; the signatures below are the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl


@dataclass(frozen=True)
class RawViews:
    """The three views as read from a source, before validation (any dtypes, ERP or alias headers)."""

    items: pl.DataFrame
    routings: pl.DataFrame
    work_orders: pl.DataFrame


@dataclass(frozen=True)
class Views:
    """Validated views. See ``schema`` for the types; routing times are in minutes.

    ``routings`` holds every valid routing row of every version; ``active_routings``
    holds the chosen version per item (MAJOR_FLG = Y and valid on the reference
    date, then the latest), ordered by ITEM_CD and numeric PROC_SEQ.
    """

    items: pl.DataFrame
    routings: pl.DataFrame
    active_routings: pl.DataFrame
    work_orders: pl.DataFrame


@dataclass
class ValidationReport:
    """Everything validation rejected or changed."""

    rule_counts: dict[str, int] = field(default_factory=dict)
    rejected: pl.DataFrame | None = None  # columns: view, row, ITEM_CD, rule, reason
    notes: list[str] = field(default_factory=list)
    encodings: dict[str, str] = field(default_factory=dict)


def validate_views(raw: RawViews, reference_date: date | None = None) -> tuple[Views, ValidationReport]:
    raise NotImplementedError
