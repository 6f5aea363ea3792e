"""Batch prediction page (일괄 예측): upload new items, predict the top routing of each, add them to the export basket."""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl
import streamlit as st

from pages.basket import get_basket, warning_text
from pages.common import current_predictor, get_settings, keep, lang, md_escape, show_error, tr
from pages.report_view import EMPTY_CELL, show_notes, show_rows, split_rejected
from routing_core.errors import RoutingError
from routing_core.export import DEFAULT_ROUT_NO, basket_routings_from_result, predict_in_chunks, top_candidates
from routing_core.i18n import has_key, localized
from routing_core.predict import PredictionOptions, Predictor
from routing_core.schema import ITEM_VIEW
from routing_core.sources import read_item_list
from routing_core.timeagg import MAX_LOT_SIZE

UPLOAD_KEY = "batch.upload"
STATE_KEY = "batch.state"  # the parsed upload and its prediction; survives page switches
CHUNK_SIZE = 100

# A top candidate whose most similar supporting item has a cosine similarity below this
# value is marked, left unticked and must be added on purpose. On the 2,000-item sample,
# 875 existing items predicted with Predictor.predict_items (which leaves the item itself
# out) all had a best supporting similarity above 0.5, with a 1st percentile of 0.69.
# A purchased O-ring among machined rings got 0.26.
# NOTE: the value comes from the sample data. No floor has been measured on real ERP data.
LOW_SIMILARITY = 0.5

# read_item_list names the items of a file without an ITEM_CD column NEW-1, NEW-2, ….
GENERATED_CODE_PATTERN = r"^NEW-\d+$"

# Note keys left out of the notes list, because the read summary already states the rows left out.
# "columns_missing" would list every item-master column a short item list lacks; the page
# names only the missing columns the model uses.
_NOTES_SHOWN_ELSEWHERE = {"item_list_rows_left_out", "columns_missing"}


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


def _has_generated_codes(items: pl.DataFrame) -> bool:
    """Return whether the item codes were generated because the file had no ITEM_CD column."""
    return items.height > 0 and bool(items.get_column("ITEM_CD").str.contains(GENERATED_CODE_PATTERN).all())


def _item_column_label(column: str) -> str:
    """Return the form label of an item-master column with the ERP name beside it, e.g. 외경(mm) (OUTDIAMETER)."""
    key = f"feature.{column}"
    return f"{tr(key)} ({column})" if has_key(key) else column


def _show_notes(notes: list[str]) -> None:
    """Show dropped columns as a warning and the other reading notes as a list."""
    dropped = [note for note in notes if getattr(note, "key", None) == "columns_dropped"]
    others = [note for note in notes if note not in dropped and getattr(note, "key", None) not in _NOTES_SHOWN_ELSEWHERE]
    for note in dropped:
        st.warning(md_escape(localized(note, lang())) + "\n\n" + tr("batch.dropped_hint"))
    if others:
        show_notes(others)


def _show_preview(items: pl.DataFrame) -> None:
    """Show the items read, with labelled headers and without the columns the file left empty."""
    filled = [c for c in items.columns if c in ("ITEM_CD", "ITEM_NM") or items.get_column(c).null_count() < items.height]
    with st.expander(tr("batch.items_preview", n=items.height)):
        if len(filled) < items.width:
            st.caption(tr("batch.empty_columns_hidden", n=items.width - len(filled)))
        preview = items.select([pl.col(c).alias(_item_column_label(c)) for c in filled])
        st.dataframe(preview, hide_index=True, width="stretch", placeholder=EMPTY_CELL)


def _show_upload(state: dict[str, Any], features: list[str]) -> None:
    items: pl.DataFrame = state["items"]
    report = state["report"]
    st.markdown(tr("batch.read", file=md_escape(state["file_name"]), items=items.height, left_out=report.rows_left_out))
    for name, encoding in report.encodings.items():
        st.caption(tr("batch.encoding", file=md_escape(name), encoding=encoding))
    _show_notes(report.notes)
    missing = [f for f in features if f in report.missing_columns.get(ITEM_VIEW, [])]
    if missing:
        st.info(tr("batch.features_missing", columns=", ".join(_item_column_label(c) for c in missing)))

    left_out, reported = split_rejected(report.rejected)
    if left_out.height:
        st.error(tr("batch.rejected", n=left_out.height))
        show_rows(left_out, with_view=False)
    if reported.height:
        st.warning(tr("batch.reported", n=reported.height))
        show_rows(reported, with_view=False)
    changed = report.changed if report.changed is not None else pl.DataFrame()
    if changed.height:
        # The examples cover values that were changed and kept values that are only reported.
        n_changed = sum(report.rule_counts.get(rule, 0) for rule in changed.get_column("rule").unique().to_list())
        st.warning(tr("batch.changed", n=n_changed))
        show_rows(changed, with_view=False)
    if _has_generated_codes(items):
        st.warning(tr("batch.generated_codes"))
    _show_preview(items)


def _predict(state: dict[str, Any], predictor: Predictor, options: PredictionOptions) -> None:
    items: pl.DataFrame = state["items"]
    bar = st.progress(0.0, text=tr("batch.progress", done=0, total=items.height))

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=tr("batch.progress", done=done, total=total))

    state["result"] = predict_in_chunks(predictor, items, options, chunk_size=CHUNK_SIZE, progress=progress)
    state["version"] = predictor.bundle.version
    state["message"] = None
    bar.empty()


def _result_table(state: dict[str, Any]) -> pl.DataFrame:
    """Return the top candidate per item with its best supporting similarity, translated warnings and a selection column.

    Rows are ticked when they have a candidate, the candidate's best similarity is
    at least ``LOW_SIMILARITY`` and the item codes come from the file.
    """
    result = state["result"]
    table = top_candidates(result)
    best = result.candidates.filter(pl.col("rank") == 1).select("query", "best_similarity")
    codes = table.select(pl.col("warnings").explode().drop_nulls().unique()).to_series().to_list()
    texts = {code: warning_text(code) for code in codes}
    names = state["items"].select(pl.col("ITEM_CD").alias("item_cd"), pl.col("ITEM_NM").alias("item_nm"))
    low = pl.col("best_similarity") < LOW_SIMILARITY
    low_text = pl.lit(tr("batch.low_similarity_warning", floor=LOW_SIMILARITY))
    translated = pl.col("warnings").list.eval(pl.element().replace_strict(texts, default=pl.element())).list.join(" / ")
    return (
        table.join(names, on="item_cd", how="left", maintain_order="left")
        .join(best, on="query", how="left", maintain_order="left")
        .with_columns(
            low.fill_null(False).alias("low_similarity"),
            pl.when(low).then(pl.concat_str(low_text, translated, separator=" / ", ignore_nulls=True)).otherwise(translated).alias("warnings"),
            pl.when(low).then(pl.lit("⚠")).otherwise(pl.lit("")).alias("check"),
            pl.col("score").round(3),
            pl.col("best_similarity").round(3),
            (pl.col("lead_time_min") / 60).round(1).alias("lead_time_h"),
            pl.col("subcontract_days").round(1),
        )
        .with_columns(
            (pl.col("candidate_id").is_not_null() & ~pl.col("low_similarity") & pl.lit(not _has_generated_codes(state["items"]))).alias("select"),
        )
        .select(
            "select", "check", "query", "item_cd", "item_nm", "best_similarity", "candidate_id", "score",
            "n_support", "n_operations", "lead_time_h", "subcontract_days", "warnings", "low_similarity",
        )
    )


def _operations_table(operations: pl.DataFrame) -> pl.DataFrame:
    inside = {"Y": tr("flag.inside.Y"), "N": tr("flag.inside.N")}
    return operations.sort("pos").select(
        pl.col("proc_seq").alias(tr("editor.col.PROC_SEQ")),
        pl.col("job_cd").alias(tr("editor.col.JOB_CD")),
        pl.col("job_nm").alias(tr("editor.col.JOB_NM")),
        pl.col("res_cd").alias(tr("editor.col.RES_CD")),
        pl.col("inside_flag").replace_strict(inside, default=None).alias(tr("editor.col.INSIDE_FLG")),
        pl.col("setup_min").round(1).alias(tr("col.setup_min")),
        pl.col("run_min").round(2).alias(tr("col.run_min")),
        pl.col("mfg_lt").round(1).alias(tr("editor.col.MFG_LT")),
        pl.col("n_items").alias(tr("col.n_items")),
    )


def _show_candidate(state: dict[str, Any], table: pl.DataFrame) -> None:
    """Let the user pick one item and see its candidate's operations and supporting items before adding it."""
    rows = table.filter(pl.col("candidate_id").is_not_null())
    if rows.height == 0:
        return

    name = (
        pl.when(pl.col("item_nm").fill_null("") != "")
        .then(pl.format("{} — {}", pl.col("item_cd"), pl.col("item_nm")))
        .otherwise(pl.col("item_cd"))
    )
    label = pl.format(
        "{} · {} {}{}", name, pl.lit(tr("batch.best_similarity")), pl.col("best_similarity").round(2).cast(pl.String),
        pl.when(pl.col("low_similarity")).then(pl.lit(" ⚠")).otherwise(pl.lit("")),
    )
    labels = dict(rows.select("query", label.alias("label")).iter_rows())
    queries = list(labels)
    low_queries = rows.filter(pl.col("low_similarity")).get_column("query").to_list()
    preview_query = state.get("preview_query")
    if preview_query not in queries:
        preview_query = low_queries[0] if low_queries else queries[0]

    st.markdown(f"**{tr('batch.operations')}**")
    # The key contains the language, so a language switch draws the option labels anew.
    # The page state, not the widget, keeps the chosen item across that switch.
    query = st.selectbox(
        tr("batch.pick_item"), queries, index=queries.index(preview_query),
        format_func=lambda q: labels[q], key=f"batch.preview.{state['digest']}.{state['version']}@{lang()}",
    )
    state["preview_query"] = query

    row = rows.row(queries.index(query), named=True)
    result = state["result"]
    mine = (pl.col("query") == query) & (pl.col("candidate_id") == row["candidate_id"])
    st.caption(tr("batch.candidate_caption", candidate=row["candidate_id"], score=row["score"], n=row["n_support"]))
    if row["low_similarity"]:
        st.warning(tr("batch.low_similarity_detail", similarity=row["best_similarity"], floor=LOW_SIMILARITY))
    st.dataframe(_operations_table(result.operations.filter(mine)), hide_index=True, width="stretch", placeholder=EMPTY_CELL)

    support = result.support.filter(mine).sort("similarity", descending=True).select(
        pl.col("item_cd").alias(tr("col.item_cd")),
        pl.col("item_nm").alias(tr("col.item_nm")),
        pl.col("similarity").round(3).alias(tr("col.similarity")),
    )
    st.markdown(f"**{tr('predict.support')}**")
    st.dataframe(support, hide_index=True, width="stretch", placeholder=EMPTY_CELL)


def _show_result(state: dict[str, Any]) -> None:
    table = _result_table(state)
    without = table.filter(pl.col("candidate_id").is_null()).height
    n_low = table.filter(pl.col("low_similarity") & pl.col("candidate_id").is_not_null()).height
    generated = _has_generated_codes(state["items"])
    st.subheader(tr("batch.result", n=table.height))
    if without:
        st.warning(tr("batch.without_candidate", n=without))
    if n_low:
        st.warning(tr("batch.low_similarity", n=n_low, floor=LOW_SIMILARITY))
    column_config = {
        "select": st.column_config.CheckboxColumn(tr("batch.select")),
        "check": st.column_config.TextColumn(tr("batch.check"), help=tr("batch.check_help", floor=LOW_SIMILARITY), width="small"),
        "query": None,
        "item_cd": tr("col.item_cd"),
        "item_nm": tr("col.item_nm"),
        "best_similarity": st.column_config.NumberColumn(tr("batch.best_similarity"), format="%.3f", help=tr("batch.best_similarity_help")),
        "candidate_id": tr("export.candidate"),
        "score": st.column_config.NumberColumn(tr("predict.score"), format="%.3f"),
        "n_support": tr("predict.n_support"),
        "n_operations": tr("predict.n_operations"),
        "lead_time_h": st.column_config.NumberColumn(tr("batch.lead_time_h"), format="%.1f"),
        "subcontract_days": st.column_config.NumberColumn(
            tr("batch.subcontract_days"), format="%.1f", help=tr("batch.subcontract_days_help")
        ),
        "warnings": tr("batch.warnings"),
        "low_similarity": None,
    }
    # Generated codes lock the whole table, so no row can be ticked.
    editable = [] if generated else ["select"]
    edited = st.data_editor(
        table, key=f"batch.select.{state['digest']}.{state['version']}", hide_index=True, width="stretch",
        column_config=column_config, disabled=[c for c in table.columns if c not in editable], placeholder=EMPTY_CELL,
    )
    chosen = edited.filter(pl.col("select") & pl.col("candidate_id").is_not_null()).get_column("query").to_list()
    _show_candidate(state, table)

    if generated:
        st.warning(tr("batch.generated_blocked"))
    rout_col, selected_col, all_col = st.columns([1, 1, 1], vertical_alignment="bottom")
    rout_no = rout_col.text_input(tr("editor.rout_no"), **keep("batch.rout_no", DEFAULT_ROUT_NO)).strip()
    add_selected = selected_col.button(
        tr("batch.add_selected", n=len(chosen)), disabled=generated or not chosen or not rout_no, type="primary",
        help=tr("batch.generated_blocked") if generated else None,
    )
    # Adding every row takes the ⚠ rows too, so it waits for an explicit yes when there are any.
    low_confirmed = n_low == 0 or all_col.checkbox(
        tr("batch.add_all_confirm", n=n_low), key=f"batch.add_all_confirm.{state['digest']}.{state['version']}"
    )
    add_all = all_col.button(
        tr("batch.add_all", n=table.height - without),
        disabled=generated or table.height == without or not rout_no or not low_confirmed,
        help=tr("batch.generated_blocked") if generated else (tr("batch.add_all_low", n=n_low) if n_low else None),
    )
    if (add_selected or add_all) and not generated:
        queries = table.get_column("query").to_list() if add_all else chosen
        names = dict(zip(state["items"]["ITEM_CD"].to_list(), state["items"]["ITEM_NM"].to_list()))
        routings, skipped = basket_routings_from_result(state["result"], queries, rout_no, names, state["version"])
        basket = get_basket()
        replaced = sum(basket.add(routing) for routing in routings)
        # The key and values are stored, not the text, so the message follows a language switch.
        state["message"] = {
            "key": "batch.added",
            "params": {"added": len(routings) - replaced, "replaced": replaced, "skipped": len(skipped), "n": len(basket)},
        }
    message = state.get("message")
    if message:
        st.success(tr(message["key"], **message["params"]))
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
    _show_upload(state, [f.name for f in settings.features])
    if state["items"].height == 0:
        st.warning(tr("batch.no_items"))
        return

    lot_col, top_col = st.columns(2)
    lot_size = lot_col.number_input(tr("predict.lot_size"), min_value=1.0, max_value=float(MAX_LOT_SIZE), step=1.0, format="%g", **keep("batch.lot_size", float(settings.default_lot_size)))
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
