"""Downloadable bytes of a table: xlsx and CSV (UTF-8 with BOM, so Korean Excel opens it)."""

from __future__ import annotations

import io

import polars as pl

# Text that Excel would read as a formula: =, +, @, tab or CR first, or a "-" that does not start a plain number.
_FORMULA_START = r"^[=+@\t\r]"
_PLAIN_NEGATIVE_NUMBER = r"^-(?:\d+\.?\d*|\.\d+)$"


def _formula_like(name: str) -> pl.Expr:
    text = pl.col(name)
    return text.str.contains(_FORMULA_START) | (text.str.starts_with("-") & ~text.str.contains(_PLAIN_NEGATIVE_NUMBER))


def to_xlsx_bytes(frame: pl.DataFrame, sheet: str = "data") -> bytes:
    """Return ``frame`` as an xlsx workbook with one sheet, header row frozen and autofit columns.

    Polars writes text cells as strings, so formula-like text stays text.
    """
    buffer = io.BytesIO()
    frame.write_excel(buffer, worksheet=sheet, autofit=True, freeze_panes=(1, 0))
    return buffer.getvalue()


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    """Return ``frame`` as CSV in UTF-8 with a byte-order mark.

    Text cells that Excel would run as a formula get a leading apostrophe, the
    usual guard against CSV formula injection; numbers are unchanged.
    """
    text_columns = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    guarded = frame.with_columns(
        pl.when(_formula_like(name)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name in text_columns
    )
    return guarded.write_csv().encode("utf-8-sig")
