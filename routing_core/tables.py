"""Downloadable bytes of a table: xlsx and CSV (UTF-8 with BOM, so Korean Excel opens it)."""

from __future__ import annotations

import io

import polars as pl

# Excel and LibreOffice read a cell starting with one of these as a formula (CSV injection).
FORMULA_START = r"^[=+@\t\r]"
# A minus sign is harmless only in front of a plain number (ASCII digits, as spreadsheets read them).
PLAIN_NEGATIVE_NUMBER = r"^-(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"


def _formula_like(name: str) -> pl.Expr:
    text = pl.col(name)
    return text.str.contains(FORMULA_START) | (text.str.starts_with("-") & ~text.str.contains(PLAIN_NEGATIVE_NUMBER))


def escape_formula_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with a leading apostrophe on every text cell that a spreadsheet would run as a formula.

    A cell is formula-like when it starts with =, +, @, a tab or a carriage
    return, or with a minus sign that does not start a plain number. The
    apostrophe is the usual guard against CSV formula injection. Numbers and
    other columns are unchanged.
    """
    text_columns = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(_formula_like(name)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name in text_columns
    )


def to_xlsx_bytes(frame: pl.DataFrame, sheet: str = "data") -> bytes:
    """Return ``frame`` as an xlsx workbook with one sheet, header row frozen and autofit columns.

    Polars writes text cells as strings, so formula-like text stays text.
    """
    buffer = io.BytesIO()
    frame.write_excel(buffer, worksheet=sheet, autofit=True, freeze_panes=(1, 0))
    return buffer.getvalue()


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    """Return ``frame`` as CSV in UTF-8 with a byte-order mark, formula-like text escaped by ``escape_formula_text``."""
    return escape_formula_text(frame).write_csv().encode("utf-8-sig")
