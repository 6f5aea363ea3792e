"""Streamlit helpers shared by the prediction, batch and export pages: the export basket and problem tables."""

from __future__ import annotations

import polars as pl
import streamlit as st

from pages.common import tr
from pages.report_view import EMPTY_CELL
from routing_core.export import Basket

BASKET_KEY = "export.basket"


def get_basket() -> Basket:
    """Return the session's export basket.

    It lives under a key that no widget uses, so it survives page switches.
    """
    basket = st.session_state.get(BASKET_KEY)
    if not isinstance(basket, Basket):
        basket = Basket()
        st.session_state[BASKET_KEY] = basket
    return basket


def column_label(column: str | None) -> str:
    """Return the display name of an ERP routing column."""
    return tr(f"editor.col.{column}") if column else ""


def warning_text(code: str) -> str:
    """Translate a prediction warning code such as ``attributes_missing:3``."""
    name, _, detail = code.partition(":")
    if name == "attributes_missing":
        return tr("warning.attributes_missing", n=detail)
    if name == "unseen_category":
        column, _, value = detail.partition("=")
        return tr("warning.unseen_category", column=tr(f"feature.{column}"), value=value)
    return tr(f"warning.{name}")


def problems_table(problems: pl.DataFrame, with_item: bool = False) -> pl.DataFrame:
    """Return problem rows (``export.PROBLEM_SCHEMA``) as a translated table; rows are numbered from 1."""
    rows = problems.to_dicts()
    messages = [
        tr(f"editor.rule.{p['rule']}", column=column_label(p["column"]), value="" if p["value"] is None else p["value"])
        for p in rows
    ]
    table = {
        tr("editor.problem.row"): [None if p["row"] is None else p["row"] + 1 for p in rows],
        tr("editor.col.PROC_SEQ"): [p["PROC_SEQ"] for p in rows],
        tr("editor.problem.column"): [column_label(p["column"]) for p in rows],
        tr("editor.problem.message"): messages,
    }
    if with_item:
        table = {tr("editor.col.ITEM_CD"): [p["ITEM_CD"] for p in rows], tr("editor.col.ROUT_NO"): [p["ROUT_NO"] for p in rows], **table}
    return pl.DataFrame(table, strict=False)


def show_problems(problems: pl.DataFrame, with_item: bool = False) -> None:
    """Show an error with the number of problems and the table of problems."""
    st.error(tr("editor.problems", n=problems.height))
    st.dataframe(problems_table(problems, with_item=with_item), hide_index=True, width="stretch", placeholder=EMPTY_CELL)
