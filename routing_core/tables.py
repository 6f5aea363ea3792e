"""Downloadable bytes of a table: xlsx and CSV (UTF-8 with BOM, so Korean Excel opens it)."""

from __future__ import annotations

import io

import polars as pl


def to_xlsx_bytes(frame: pl.DataFrame, sheet: str = "data") -> bytes:
    """Return ``frame`` as an xlsx workbook with one sheet, header row frozen and autofit columns."""
    buffer = io.BytesIO()
    frame.write_excel(buffer, worksheet=sheet, autofit=True, freeze_panes=(1, 0))
    return buffer.getvalue()


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    """Return ``frame`` as CSV in UTF-8 with a byte-order mark."""
    return frame.write_csv().encode("utf-8-sig")
