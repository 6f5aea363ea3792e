"""Batch prediction page (일괄 예측): upload new items, predict the top routing of each, add them to the export basket."""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl
import streamlit as st

from pages.basket import get_basket, warning_text
from pages.common import current_predictor, get_settings, keep, show_error, tr
from routing_core.errors import RoutingError
from routing_core.export import DEFAULT_ROUT_NO, basket_routings_from_result, predict_in_chunks, top_candidates
from routing_core.i18n import has_key
from routing_core.predict import PredictionOptions, Predictor
from routing_core.sources import read_item_list
from routing_core.validation import RULES as VALIDATION_RULES

UPLOAD_KEY = "batch.upload"
STATE_KEY = "batch.state"  # the parsed upload and its prediction; survives page switches
CHUNK_SIZE = 100


def _read_upload() -> tuple[dict[str, Any] | None, bool]:
    """Parse a new upload into the page state; return the state (also for an earlier upload) and whether reading failed.

    A failed upload shows its error here and leaves no state.
    """
    upload = st.file_uploader(
        tr("batch.upload"), type=["xlsx", "csv", "parquet"], key=UPLOAD_KEY, help=tr("batch.upload_help"),
    )
    state = st.session_state.get(STATE_KEY)
    if upload is None:
        return state, False
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if state is not None and state["digest"] == digest:
        return state, False
    try:
        items, report = read_item_list(data, upload.name)
    except RoutingError as exc:
        show_error(exc)
        st.session_state.pop(STATE_KEY, None)
        return None, True
    state = {"digest": digest, "file_name": upload.name, "items": items, "report": report,
             "result": None, "version": None, "message": None}
    st.session_state[STATE_KEY] = state
    return state, False


def _rule_name(rule: str) -> str:
    key = f"validation.rule.{rule}"
    return tr(key) if has_key(key) else rule


def _show_upload(state: dict[str, Any]) -> None:
    items: pl.DataFrame = state["items"]
    report = state["report"]
    rejected = report.rejected if report.rejected is not None else pl.DataFrame()
    left_out = report.rows_left_out
    st.markdown(tr("batch.read", file=state["file_name"], items=items.height, left_out=left_out))
    for name, encoding in report.encodings.items():
        st.caption(tr("batch.encoding", file=name, encoding=encoding))
    if rejected.height:
        st.error(tr("batch.rejected", n=rejected.height))
        st.dataframe(
            rejected.select(
                pl.col("row").alias(tr("batch.row")),
                pl.col("ITEM_CD").alias(tr("col.item_cd")),
                pl.col("rule").replace_strict({r: _rule_name(r) for r in rejected["rule"].unique()}, default=pl.col("rule"))
                .alias(tr("data.rule")),
                pl.col("reason").alias(tr("batch.reason")),
            ),
            hide_index=True, width="stretch",
        )
    changed = {rule: n for rule, n in report.rule_counts.items() if VALIDATION_RULES[rule][0] == "changed"}
    if changed:
        st.caption(tr("batch.changed") + " " + ", ".join(f"{_rule_name(rule)}: {n}" for rule, n in changed.items()))
    if items.height and items.get_column("ITEM_CD").str.starts_with("NEW-").all():
        st.warning(tr("batch.generated_codes"))
    with st.expander(tr("batch.items_preview", n=items.height)):
        st.dataframe(items, hide_index=True, width="stretch")


def _predict(state: dict[str, Any], predictor: Predictor, options: PredictionOptions) -> None:
    items: pl.DataFrame = state["items"]
    bar = st.progress(0.0, text=tr("batch.progress", done=0, total=items.height))

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=tr("batch.progress", done=done, total=total))

    state["result"] = predict_in_chunks(predictor, items, options, chunk_size=CHUNK_SIZE, progress=progress)
    state["version"] = predictor.bundle.version
    state["message"] = None


def _result_table(state: dict[str, Any]) -> pl.DataFrame:
    """Return the top candidate per item with translated warnings and a selection column."""
    table = top_candidates(state["result"])
    codes = table.select(pl.col("warnings").explode().drop_nulls().unique()).to_series().to_list()
    texts = {code: warning_text(code) for code in codes}
    names = state["items"].select(pl.col("ITEM_CD").alias("item_cd"), pl.col("ITEM_NM").alias("item_nm"))
    return (
        table.join(names, on="item_cd", how="left", maintain_order="left")
        .with_columns(
            pl.col("warnings").list.eval(pl.element().replace_strict(texts, default=pl.element())).list.join(" / ").alias("warnings"),
            pl.col("candidate_id").is_not_null().alias("select"),
            pl.col("score").round(3),
            (pl.col("lead_time_min") / 60).round(1).alias("lead_time_h"),
        )
        .select("select", "query", "item_cd", "item_nm", "candidate_id", "score", "n_support", "n_operations", "lead_time_h", "warnings")
    )


def _show_result(state: dict[str, Any]) -> None:
    table = _result_table(state)
    without = table.filter(pl.col("candidate_id").is_null()).height
    st.subheader(tr("batch.result", n=table.height))
    if without:
        st.warning(tr("batch.without_candidate", n=without))
    column_config = {
        "select": st.column_config.CheckboxColumn(tr("batch.select")),
        "query": None,
        "item_cd": tr("col.item_cd"),
        "item_nm": tr("col.item_nm"),
        "candidate_id": tr("export.candidate"),
        "score": st.column_config.NumberColumn(tr("predict.score"), format="%.3f"),
        "n_support": tr("predict.n_support"),
        "n_operations": tr("predict.n_operations"),
        "lead_time_h": st.column_config.NumberColumn(tr("batch.lead_time_h"), format="%.1f"),
        "warnings": tr("batch.warnings"),
    }
    edited = st.data_editor(
        table, key=f"batch.select.{state['digest']}.{state['version']}", hide_index=True, width="stretch",
        column_config=column_config, disabled=[c for c in table.columns if c != "select"],
    )
    chosen = edited.filter(pl.col("select")).get_column("query").to_list()

    rout_col, selected_col, all_col = st.columns([1, 1, 1], vertical_alignment="bottom")
    rout_no = rout_col.text_input(tr("editor.rout_no"), **keep("batch.rout_no", DEFAULT_ROUT_NO)).strip()
    add_selected = selected_col.button(tr("batch.add_selected", n=len(chosen)), disabled=not chosen or not rout_no, type="primary")
    add_all = all_col.button(tr("batch.add_all", n=table.height - without), disabled=table.height == without or not rout_no)
    if add_selected or add_all:
        queries = table.get_column("query").to_list() if add_all else chosen
        names = dict(zip(state["items"]["ITEM_CD"].to_list(), state["items"]["ITEM_NM"].to_list()))
        routings, skipped = basket_routings_from_result(state["result"], queries, rout_no, names, state["version"])
        basket = get_basket()
        replaced = sum(basket.add(routing) for routing in routings)
        state["message"] = tr("batch.added", added=len(routings) - replaced, replaced=replaced, skipped=len(skipped), n=len(basket))
    if state["message"]:
        st.success(state["message"])
        st.page_link("pages/export.py", label=tr("batch.go_export"), icon=":material/upload_file:")


def main() -> None:
    settings = get_settings()
    st.title(tr("batch.title"))
    st.caption(tr("batch.caption"))
    predictor = current_predictor(settings)
    if predictor is None:
        return

    state, failed = _read_upload()
    if state is None:
        if not failed:
            st.info(tr("batch.no_file"))
        return
    _show_upload(state)
    if state["items"].height == 0:
        st.warning(tr("batch.no_items"))
        return

    lot_col, top_col = st.columns(2)
    lot_size = lot_col.number_input(tr("predict.lot_size"), min_value=1.0, step=1.0, format="%g", **keep("batch.lot_size", float(settings.default_lot_size)))
    top_k = top_col.slider(tr("predict.top_k"), min_value=1, max_value=50, **keep("batch.top_k", settings.top_k))
    if st.button(tr("batch.run", n=state["items"].height), type="primary", icon=":material/online_prediction:"):
        try:
            options = PredictionOptions.from_settings(settings, top_k=top_k, lot_size=lot_size, max_candidates=1)
            _predict(state, predictor, options)
        except RoutingError as exc:
            show_error(exc)
            return
    if state["result"] is not None:
        _show_result(state)


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
