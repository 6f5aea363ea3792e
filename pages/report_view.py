"""Streamlit tables of a validation report's rows, shared by the data and batch pages."""

from __future__ import annotations

import polars as pl
import streamlit as st

from pages.common import lang, md_escape, tr
from routing_core.i18n import has_key, localized
from routing_core.validation import RULES

# Text shown in a table cell without a value (Streamlit shows "None" by default).
EMPTY_CELL = "—"

# Rule actions whose rows are left out of the data. Rows of "changed" and "reported" rules are kept.
LEFT_OUT_ACTIONS = ("rejected", "removed")

# Column order of the row tables. Rejected rows have "reason", and changed-value examples have "detail".
_ROW_COLUMNS = ("view", "row", "ITEM_CD", "rule_name", "reason", "detail", "rule")


def rule_name(rule: str) -> str:
    """Return the description of a validation rule in the session's language, or the rule code."""
    key = f"validation.rule.{rule}"
    return tr(key) if has_key(key) else rule


def split_rejected(rejected: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a report's ``rejected`` rows into (rows left out, rows only reported)."""
    if rejected is None or rejected.height == 0:
        empty = pl.DataFrame(schema={"view": pl.String, "row": pl.Int64, "ITEM_CD": pl.String, "rule": pl.String, "reason": pl.String})
        return empty, empty
    left_out_rules = [rule for rule, (action, _) in RULES.items() if action in LEFT_OUT_ACTIONS]
    is_left_out = pl.col("rule").is_in(left_out_rules)
    return rejected.filter(is_left_out), rejected.filter(~is_left_out)


def rows_table(rows: pl.DataFrame, with_view: bool = True) -> pl.DataFrame:
    """Return validation rows (rejected rows or changed-value examples) with translated headers.

    The rule code stays beside its description as a name that does not change with
    the language. ``with_view`` keeps the view column, which a single-file upload
    does not need.
    """
    # Translated here in the script thread, because a Polars callback would run without the session's language.
    names = {rule: rule_name(rule) for rule in rows.get_column("rule").unique().drop_nulls().to_list()}
    table = rows.with_columns(pl.col("rule").replace_strict(names, default=pl.col("rule")).alias("rule_name"))
    columns = [c for c in _ROW_COLUMNS if c in table.columns and (with_view or c != "view")]
    headers = {
        c: tr("data.rule_name") if c == "rule_name" else tr(f"data.rejected_col.{c}")
        for c in columns
    }
    return table.select([pl.col(c).alias(headers[c]) for c in columns])


def show_rows(rows: pl.DataFrame, with_view: bool = True) -> None:
    """Show validation rows as a table (see ``rows_table``)."""
    st.dataframe(rows_table(rows, with_view=with_view), hide_index=True, width="stretch", placeholder=EMPTY_CELL)


def show_notes(notes: list[str]) -> None:
    """Show a report's notes as a list in the session's language."""
    st.markdown("\n".join(f"- {md_escape(localized(note, lang()))}" for note in notes))
