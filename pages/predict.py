"""Prediction page (예측): pick an existing item or enter a new one, then compare routing candidates."""

from __future__ import annotations

import hashlib
import math
import unicodedata
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from pages.basket import column_label, get_basket, show_problems, warning_text
from pages.common import MISSING_TEXT, current_predictor, get_settings, keep, lang, model_data_notice, show_error, tr
from routing_core.config import Settings
from routing_core.errors import RoutingError
from routing_core.export import (
    DEFAULT_ROUT_NO,
    EDITOR_COLUMNS,
    EDITOR_TIME_UNITS,
    TIME_COLUMNS,
    BasketRouting,
    check_operations,
    conform_operations,
    operations_from_result,
    renumber_operations,
    sort_operations,
)
from routing_core.features import MISSING_CATEGORY
from routing_core.predict import TIME_KINDS, PredictionOptions, PredictionResult, Predictor, routing_lead_time
from routing_core.timeagg import MAX_LOT_SIZE

MAX_LISTED_ITEMS = 200
RESULT_KEY = "predict.result"
# Smallest change of subcontract days shown as a change, so float noise in the sums is not.
SHOWN_DAYS_STEP = 0.05
# Candidate key -> {"base", "draft", "predicted", "gen", "pick"}: the editor's own copy of each edited routing.
EDITOR_STATE_KEY = "editor.state"
MAX_EDITED_CANDIDATES = 50
NEW_OPERATION = -1
_FLAG_OPTIONS = ["Y", "N"]


def _pick_existing_item(predictor: Predictor) -> str | None:
    items = predictor.bundle.items
    query = st.text_input(tr("predict.search"), help=tr("predict.search_help"), **keep("predict.search", ""))
    # Codes are NFKC-normalised by validation, so full-width input must be too; search ignores case.
    text = unicodedata.normalize("NFKC", query or "").strip().lower()
    if text:
        matches = items.filter(
            pl.col("ITEM_CD").str.to_lowercase().str.contains(text, literal=True)
            | pl.col("ITEM_NM").fill_null("").str.to_lowercase().str.contains(text, literal=True)
        )
    else:
        matches = items.filter(pl.col("has_routing"))
    if matches.height == 0:
        st.info(tr("predict.no_match"))
        return None
    shown = matches.head(MAX_LISTED_ITEMS)
    labels = dict(zip(shown.get_column("ITEM_CD").to_list(), shown.get_column("ITEM_NM").fill_null("").to_list()))
    options = list(labels)
    kept = st.session_state.get("_keep.predict.item")
    if kept not in labels:
        st.session_state.pop("predict.item", None)
        st.session_state.pop("_keep.predict.item", None)
    choice = st.selectbox(
        tr("predict.pick_item"), options=options, format_func=lambda code: f"{code} — {labels.get(code, '')}", **keep("predict.item", options[0])
    )
    if matches.height > MAX_LISTED_ITEMS:
        st.caption(tr("predict.matches_shown", n=matches.height, shown=MAX_LISTED_ITEMS))
    return choice


def _new_item_form(predictor: Predictor) -> dict[str, object]:
    encoder = predictor.bundle.encoder
    attributes: dict[str, object] = {}
    code = st.text_input(tr("predict.new_item_code"), **keep("predict.new.ITEM_CD", ""))
    if code and code.strip():
        attributes["ITEM_CD"] = code.strip()
    st.markdown(f"**{tr('predict.attributes')}**")
    columns = st.columns(3)
    categories = dict(zip(encoder.category_features_, encoder.onehot_.categories_)) if encoder.onehot_ is not None else {}
    for i, name in enumerate(encoder.used_features_):
        with columns[i % 3]:
            if name in categories:
                options = [None] + sorted(str(v) for v in categories[name] if v != MISSING_CATEGORY)
                attributes[name] = st.selectbox(
                    tr(f"feature.{name}"), options=options, accept_new_options=True, placeholder=tr("predict.choose_or_type"),
                    format_func=lambda v: "—" if v is None else v, **keep(f"predict.new.{name}", None),
                )
            else:
                attributes[name] = st.number_input(tr(f"feature.{name}"), value=None, min_value=0.0, step=1.0, **keep(f"predict.new.{name}", None))
    return attributes


def _operation_columns(with_mfg_lt: bool) -> dict[str, Any]:
    """Return the column configuration of an operations table, keyed by display label.

    With these widths the columns up to 이동(분), and 제조LT(일) when shown, fit
    the page at 1400 px. The spreads, time source and support count follow them.
    """
    def number(key: str, width: int, number_format: str | None = None) -> tuple[str, Any]:
        return tr(key), st.column_config.NumberColumn(tr(key), width=width, format=number_format)

    def text(key: str, width: int) -> tuple[str, Any]:
        return tr(key), st.column_config.TextColumn(tr(key), width=width)

    columns = [
        number("col.proc_seq", 64, "%d"), text("col.job_cd", 64), text("col.job_nm", 90), text("col.res_cd", 74),
        text("col.res_dis", 100), text("col.inside_flag", 72), number("col.setup_min", 60), number("col.run_min", 74),
        number("col.queue_min", 60), number("col.wait_min", 70), number("col.move_min", 60),
    ]
    if with_mfg_lt:
        columns.append(number("col.mfg_lt", 70))
    columns += [text("col.setup_range", 96), text("col.run_range", 96), text("col.time_source", 72), number("col.n_items", 56)]
    return dict(columns)


def _inside_flag_label(column: str) -> pl.Expr:
    return pl.col(column).replace_strict({"Y": tr("flag.inside.Y"), "N": tr("flag.inside.N")}, default=None)


def _operations_table(operations: pl.DataFrame, with_mfg_lt: bool) -> pl.DataFrame:
    def span(kind: str) -> pl.Expr:
        return pl.format("{} – {}", pl.col(f"{kind}_min_p25").round(1), pl.col(f"{kind}_min_p75").round(1))

    return operations.sort("pos").select(
        pl.col("proc_seq").alias(tr("col.proc_seq")),
        pl.col("job_cd").alias(tr("col.job_cd")),
        pl.col("job_nm").alias(tr("col.job_nm")),
        pl.col("res_cd").alias(tr("col.res_cd")),
        pl.col("res_dis").alias(tr("col.res_dis")),
        _inside_flag_label("inside_flag").alias(tr("col.inside_flag")),
        pl.col("setup_min").round(1).alias(tr("col.setup_min")),
        pl.col("run_min").round(2).alias(tr("col.run_min")),
        pl.col("queue_min").round(1).alias(tr("col.queue_min")),
        pl.col("wait_min").round(1).alias(tr("col.wait_min")),
        pl.col("move_min").round(1).alias(tr("col.move_min")),
        *([pl.col("mfg_lt").round(1).alias(tr("col.mfg_lt"))] if with_mfg_lt else []),
        span("setup").alias(tr("col.setup_range")),
        span("run").alias(tr("col.run_range")),
        pl.col("time_source").replace_strict(
            {s: tr(f"predict.time_source.{s}") for s in ("actual", "planned", "mixed")}, default=None
        ).alias(tr("col.time_source")),
        pl.col("n_items").alias(tr("col.n_items")),
    )


def _actual_table(actual: pl.DataFrame, with_mfg_lt: bool) -> pl.DataFrame:
    """Return the routing on record with the labels of the candidate tables."""
    return actual.sort("pos").select(
        pl.col("PROC_SEQ").alias(tr("col.proc_seq")),
        pl.col("JOB_CD").alias(tr("col.job_cd")),
        pl.col("JOB_NM").alias(tr("col.job_nm")),
        pl.col("RES_CD").alias(tr("col.res_cd")),
        pl.col("RES_DIS").alias(tr("col.res_dis")),
        _inside_flag_label("INSIDE_FLAG").alias(tr("col.inside_flag")),
        pl.col("setup_min").round(1).alias(tr("col.setup_min")),
        pl.col("run_min_per_piece").round(2).alias(tr("col.run_min")),
        pl.col("queue_min").round(1).alias(tr("col.queue_min")),
        pl.col("wait_min").round(1).alias(tr("col.wait_min")),
        pl.col("move_min").round(1).alias(tr("col.move_min")),
        *([pl.col("MFG_LT").round(1).alias(tr("col.mfg_lt"))] if with_mfg_lt else []),
    )


def _time_chart(operations: pl.DataFrame, lot_size: float) -> go.Figure:
    ops = operations.sort("pos")
    labels = [f"{seq} {name or code}" for seq, name, code in zip(ops["proc_seq"], ops["job_nm"], ops["job_cd"])]
    figure = go.Figure()
    for kind in TIME_KINDS:
        values = ops[f"{kind}_min"].fill_null(0)
        if kind == "run":
            values = values * lot_size
        figure.add_bar(name=tr(f"time.{kind}"), x=labels, y=values.to_list())
    figure.update_layout(barmode="stack", height=360, margin=dict(l=10, r=10, t=30, b=10), yaxis_title=tr("predict.chart_y"), legend_orientation="h")
    return figure


def _support_table(support: pl.DataFrame) -> pl.DataFrame:
    def names(column: str) -> pl.Expr:
        return pl.col(column).list.eval(pl.element()).list.join(", ")

    translated = support.with_columns(
        pl.col("matches").list.eval(pl.element().replace_strict(_feature_names(), default=pl.element())).alias("matches"),
        pl.col("differs").list.eval(pl.element().replace_strict(_feature_names(), default=pl.element())).alias("differs"),
    )
    return translated.sort("similarity", descending=True).select(
        pl.col("item_cd").alias(tr("col.item_cd")),
        pl.col("item_nm").alias(tr("col.item_nm")),
        pl.col("similarity").round(4).alias(tr("col.similarity")),
        names("matches").alias(tr("col.matches")),
        names("differs").alias(tr("col.differs")),
    )


def _support_columns() -> dict[str, Any]:
    """Return the column configuration of the supporting-items table: name and attribute lists stay readable at 1400 px."""
    return {
        tr("col.item_cd"): st.column_config.TextColumn(tr("col.item_cd"), width=104),
        tr("col.item_nm"): st.column_config.TextColumn(tr("col.item_nm"), width=160),
        tr("col.similarity"): st.column_config.NumberColumn(tr("col.similarity"), width=64, format="%.3f"),
        tr("col.matches"): st.column_config.TextColumn(tr("col.matches"), width=300),
        tr("col.differs"): st.column_config.TextColumn(tr("col.differs"), width=240),
    }


def _feature_names() -> dict[str, str]:
    predictor = st.session_state.get("_predictor_features", [])
    return {name: tr(f"feature.{name}") for name in predictor}


def _lead_time_caption(lead_min: float, subcontract_days: float) -> str:
    """Return "about N h (D days)" and, when subcontracted operations have MFG_LT days, those days and the total."""
    text = tr("predict.lead_time_hours", hours=lead_min / 60, days=lead_min / 1440)
    if subcontract_days > 0:
        text += " · " + tr("predict.lead_time_total", days=subcontract_days, total=lead_min / 1440 + subcontract_days)
    return text


def _show_candidate(
    result: PredictionResult, candidate: dict[str, Any], predictor: Predictor, lot_size: float, version: str,
    actual_signature: list[str],
) -> None:
    """Draw one candidate tab: figures, operations, time chart, supporting items and the editor."""
    query = result.queries.row(0, named=True)
    cid = candidate["candidate_id"]
    operations = result.operations.filter(pl.col("candidate_id") == cid)
    support = result.support.filter(pl.col("candidate_id") == cid)
    lead = candidate["lead_time_min"] or 0.0
    subcontract_days = float(operations.get_column("mfg_lt").sum() or 0.0)

    columns = st.columns(5 if subcontract_days > 0 else 4)
    columns[0].metric(tr("predict.score"), f"{candidate['score']:.3f}")
    columns[1].metric(tr("predict.n_support"), candidate["n_support"])
    columns[2].metric(tr("predict.lead_time", lot=lot_size), tr("predict.lead_time_value", minutes=lead), help=tr("predict.lead_time_help"))
    columns[3].metric(tr("predict.n_operations"), operations.height)
    if subcontract_days > 0:
        columns[4].metric(
            tr("predict.total_days"), tr("predict.total_days_value", days=lead / 1440 + subcontract_days),
            help=tr("predict.total_help"),
        )
    st.caption(f"{cid} · " + _lead_time_caption(lead, subcontract_days) + " · " + tr("predict.explain", n=candidate["n_support"]))
    if subcontract_days > 0:
        st.caption(tr("predict.total_help"))
    if actual_signature:
        if candidate["signature"] == actual_signature:
            st.success(tr("predict.same_as_actual"))
        else:
            st.info(tr("predict.differs_from_actual"))

    st.markdown(f"**{tr('predict.operations')}**")
    with_mfg_lt = subcontract_days > 0
    st.dataframe(
        _operations_table(operations, with_mfg_lt), hide_index=True, width="stretch",
        column_config=_operation_columns(with_mfg_lt), placeholder=MISSING_TEXT,
    )
    st.markdown(f"**{tr('predict.chart')}**")
    st.plotly_chart(_time_chart(operations, lot_size), key=f"chart-{cid}", width="stretch")
    st.markdown(f"**{tr('predict.support')}**")
    st.dataframe(
        _support_table(support), hide_index=True, width="stretch", column_config=_support_columns(), placeholder=MISSING_TEXT,
    )
    st.divider()
    item_nm = _item_name(predictor, query["item_cd"])
    _candidate_editor(result, cid, query["item_cd"], item_nm, version, lot_size)


def _show_result(result: PredictionResult, predictor: Predictor, lot_size: float, version: str) -> None:
    query = result.queries.row(0, named=True)
    st.subheader(tr("predict.result_for", item=query["item_cd"]))
    for code in query["warnings"]:
        st.warning(warning_text(code))
    candidates = result.candidates.sort("rank")
    if candidates.height == 0:
        st.info(tr("predict.no_candidates"))
        return
    actual = predictor.bundle.routings.filter(pl.col("ITEM_CD") == query["item_cd"]).sort("pos")
    actual_signature = actual.get_column("JOB_CD").to_list()

    tabs = st.tabs([tr("predict.candidate_tab", rank=row["rank"], score=row["score"]) for row in candidates.iter_rows(named=True)])
    for tab, candidate in zip(tabs, candidates.iter_rows(named=True)):
        with tab:
            _show_candidate(result, candidate, predictor, lot_size, version, actual_signature)
    if actual_signature:
        with st.expander(tr("predict.actual_routing")):
            with_mfg_lt = bool((actual.get_column("MFG_LT").fill_null(0) > 0).any())
            st.dataframe(
                _actual_table(actual, with_mfg_lt), hide_index=True, width="stretch",
                column_config=_operation_columns(with_mfg_lt), placeholder=MISSING_TEXT,
            )
    st.caption(tr("predict.seconds", ms=result.seconds * 1000))


# --- candidate editor and basket ---------------------------------------------------------


def _item_name(predictor: Predictor, item_cd: str) -> str | None:
    names = predictor.bundle.items.filter(pl.col("ITEM_CD") == item_cd).get_column("ITEM_NM")
    return names[0] if names.len() else None


def _inside_flag_text(flag: str) -> str:
    """Return 사내 (Y) or 외주 (N): the word the engineer reads, with the ERP value that is exported."""
    return f"{tr(f'flag.inside.{flag}')} ({flag})" if flag in ("Y", "N") else flag


def _editor_column_config() -> dict[str, Any]:
    def number(column: str, **kwargs: Any) -> Any:
        return st.column_config.NumberColumn(column_label(column), **kwargs)

    def text(column: str, **kwargs: Any) -> Any:
        return st.column_config.TextColumn(column_label(column), **kwargs)

    def choice(column: str, options: list[str], **kwargs: Any) -> Any:
        return st.column_config.SelectboxColumn(column_label(column), options=options, **kwargs)

    return {
        "PROC_SEQ": number("PROC_SEQ", step=1, format="%d", help=tr("editor.help.PROC_SEQ")),
        "JOB_CD": text("JOB_CD", max_chars=20),
        "JOB_NM": text("JOB_NM"),
        "RES_CD": text("RES_CD", max_chars=20),
        "WC_CD": text("WC_CD", max_chars=20),
        "INSIDE_FLG": choice(
            "INSIDE_FLG", _FLAG_OPTIONS, help=tr("editor.help.INSIDE_FLG"), format_func=_inside_flag_text,
        ),
        "TIME_UNIT": choice("TIME_UNIT", EDITOR_TIME_UNITS, help=tr("editor.help.TIME_UNIT")),
        **{c: number(c, help=tr("editor.help.time")) for c in TIME_COLUMNS},
        "RUN_TIME_QTY": number("RUN_TIME_QTY", help=tr("editor.help.RUN_TIME_QTY")),
        "MFG_LT": number("MFG_LT", help=tr("editor.help.MFG_LT")),
        "INSP_FLG": choice("INSP_FLG", _FLAG_OPTIONS),
        "MILESTONE_FLG": choice("MILESTONE_FLG", _FLAG_OPTIONS),
        "BP_CD": text("BP_CD", max_chars=20),
    }


def _editor_state(predicted: pl.DataFrame, key: str) -> dict[str, Any]:
    """Return the editor state stored under ``key``, created from the predicted operations on first use."""
    states: dict[str, dict[str, Any]] = st.session_state.setdefault(EDITOR_STATE_KEY, {})
    state = states.get(key)
    if state is None:
        state = {"base": predicted, "draft": predicted, "predicted": predicted, "gen": 0, "pick": 0}
        states[key] = state
        for stale in list(states)[:-MAX_EDITED_CANDIDATES]:
            del states[stale]
    return state


def _commit(state: dict[str, Any], operations: pl.DataFrame) -> None:
    """Make ``operations`` the editor's new input and redraw the editor empty of pending edits."""
    state["base"] = state["draft"] = conform_operations(operations)
    state["gen"] += 1
    st.rerun()


def _candidate_editor(
    result: PredictionResult, candidate_id: str, item_cd: str, item_nm: str | None, version: str, lot_size: float
) -> None:
    """Draw the editable routing of one candidate, its checks and the add-to-basket action.

    The data editor's input is ``state["base"]``, which changes only through
    ``_commit`` together with a new widget key. Each rerun stores the editor's
    output in ``state["draft"]``. When the widget's state is gone (after a page
    or language switch) the draft becomes the input, so no edit is lost.
    """
    # The predicted operations are part of the key: predicting the same item again
    # keeps the edits, and a new item with the same candidate starts from its own times.
    predicted = operations_from_result(result, 0, candidate_id)
    digest = hashlib.sha1(predicted.write_csv().encode("utf-8")).hexdigest()[:10]
    key = f"{version}|{item_cd}|{candidate_id}|{digest}"
    state = _editor_state(predicted, key)
    grid_key = f"editor.grid.{key}.{state['gen']}.{lang()}"
    if grid_key not in st.session_state:
        state["base"] = state["draft"]

    st.subheader(tr("editor.title"))
    st.caption(tr("editor.caption"))
    edited = st.data_editor(
        state["base"], key=grid_key, num_rows="dynamic", hide_index=True,
        column_config=_editor_column_config(), column_order=EDITOR_COLUMNS, width="stretch", placeholder="",
    )
    edited = conform_operations(edited)
    state["draft"] = edited
    _edited_lead_time(edited, state["predicted"], lot_size)

    sort_col, renumber_col, reset_col = st.columns(3)
    if sort_col.button(tr("editor.sort"), key=f"editor.sort.{key}", width="stretch"):
        _commit(state, sort_operations(edited))
    if renumber_col.button(tr("editor.renumber"), key=f"editor.renumber.{key}", width="stretch"):
        _commit(state, renumber_operations(edited))
    if reset_col.button(tr("editor.reset"), key=f"editor.reset.{key}", width="stretch"):
        _commit(state, state["predicted"])

    _operation_form(state, key, edited)

    problems = check_operations(edited)
    if problems.height:
        show_problems(problems)
    else:
        st.success(tr("editor.ok", n=edited.height))
    _add_to_basket(key, edited, problems.height == 0, item_cd, item_nm, candidate_id, version)


def _edited_lead_time(edited: pl.DataFrame, predicted: pl.DataFrame, lot_size: float) -> None:
    """Show the lead time of the routing as edited and its difference to the predicted routing."""
    lead = routing_lead_time(edited, lot_size)
    if lead.minutes is None:
        st.caption(tr("editor.lead_time_unknown"))
        return

    before = routing_lead_time(predicted, lot_size)
    change = None if before.minutes is None else lead.minutes - before.minutes
    # The change is shown in whole minutes, so a smaller one counts as none. The delta text
    # starts with its sign because st.metric picks the arrow from the first character.
    delta = None if change is None or round(change) == 0 else tr("editor.lead_time_change", minutes=change)
    days_change = lead.subcontract_days - before.subcontract_days
    days_changed = abs(days_change) >= SHOWN_DAYS_STEP

    columns = st.columns(3)
    columns[0].metric(
        tr("editor.lead_time", lot=lot_size), tr("predict.lead_time_value", minutes=lead.minutes),
        delta=delta, delta_color="off", help=tr("predict.lead_time_help"),
    )
    if lead.subcontract_days > 0 or days_changed:
        days_delta = tr("editor.days_change", days=days_change) if days_changed else None
        columns[1].metric(
            tr("editor.subcontract_days"), tr("editor.days_value", days=lead.subcontract_days),
            delta=days_delta, delta_color="off",
        )
        columns[2].metric(
            tr("predict.total_days"), tr("predict.total_days_value", days=lead.minutes / 1440 + lead.subcontract_days),
            help=tr("predict.total_help"),
        )

    unchanged = delta is None and not days_changed
    st.caption(
        _lead_time_caption(lead.minutes, lead.subcontract_days) + " · "
        + tr("editor.lead_time_same" if unchanged else "editor.lead_time_changed")
    )


def _number_or_none(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _operation_label(edited: pl.DataFrame, position: int) -> str:
    if position == NEW_OPERATION:
        return tr("editor.form.new")
    row = edited.row(position, named=True)
    return f"{row['PROC_SEQ'] if row['PROC_SEQ'] is not None else '—'} · {row['JOB_CD'] or '—'} {row['JOB_NM'] or ''}"


def _new_operation(edited: pl.DataFrame) -> dict[str, Any]:
    """Return the defaults of an added operation: the next PROC_SEQ in tens, minutes, one piece, in-house."""
    last = _number_or_none(edited.get_column("PROC_SEQ").cast(pl.Float64, strict=False).max())
    row: dict[str, Any] = {c: None for c in EDITOR_COLUMNS}
    row.update(PROC_SEQ=int(last or 0) + 10, TIME_UNIT="M", RUN_TIME_QTY=1.0, INSIDE_FLG="Y")
    return row


def _operation_fields(row: dict[str, Any], form_key: str) -> dict[str, Any]:
    """Draw the input fields of one operation inside a form; return the values entered."""
    values: dict[str, Any] = {}
    columns = st.columns(4)
    seq = _number_or_none(row["PROC_SEQ"])
    values["PROC_SEQ"] = columns[0].number_input(
        column_label("PROC_SEQ"), value=int(seq) if seq is not None else None, step=10, key=f"{form_key}.PROC_SEQ"
    )
    for i, column in enumerate(["JOB_CD", "JOB_NM", "RES_CD", "WC_CD", "BP_CD"], start=1):
        values[column] = columns[i % 4].text_input(column_label(column), value=row[column] or "", key=f"{form_key}.{column}")

    choices_of = [("TIME_UNIT", EDITOR_TIME_UNITS), ("INSIDE_FLG", _FLAG_OPTIONS), ("INSP_FLG", _FLAG_OPTIONS),
                  ("MILESTONE_FLG", _FLAG_OPTIONS)]
    for i, (column, options) in enumerate(choices_of, start=6):
        current = row[column] if row[column] in options else None
        choices = [None, *options] if current is None else options
        shown = _inside_flag_text if column == "INSIDE_FLG" else str
        values[column] = columns[i % 4].selectbox(
            column_label(column), choices, index=choices.index(current),
            format_func=lambda v, shown=shown: "—" if v is None else shown(v), key=f"{form_key}.{column}",
        )

    for i, column in enumerate([*TIME_COLUMNS, "RUN_TIME_QTY", "MFG_LT"], start=10):
        values[column] = columns[i % 4].number_input(
            column_label(column), value=_number_or_none(row[column]), step=1.0,
            format="%g", key=f"{form_key}.{column}",
        )
    return values


def _operation_form(state: dict[str, Any], key: str, edited: pl.DataFrame) -> None:
    """Draw a form that edits, adds or deletes one operation: the keyboard path beside the grid."""
    with st.expander(tr("editor.form.title")):
        positions = [*range(edited.height), NEW_OPERATION]
        pick = state["pick"] if state["pick"] in positions else positions[0]
        position = st.selectbox(
            tr("editor.form.pick"), positions, index=positions.index(pick),
            format_func=lambda p: _operation_label(edited, p), key=f"editor.form.pick.{key}.{state['gen']}",
        )
        state["pick"] = position
        row = _new_operation(edited) if position == NEW_OPERATION else edited.row(position, named=True)
        # The row's values are part of the key, so a grid edit refreshes the form.
        digest = hashlib.sha1(repr(sorted(row.items())).encode("utf-8")).hexdigest()[:10]
        form_key = f"editor.form.{key}.{state['gen']}.{position}.{digest}"

        with st.form(form_key, border=False):
            values = _operation_fields(row, form_key)
            apply = st.form_submit_button(tr("editor.form.apply"), type="primary")
            delete = st.form_submit_button(tr("editor.form.delete"), disabled=position == NEW_OPERATION)

        before, after = edited.head(max(position, 0)), edited.slice(position + 1)
        if apply:
            changed = conform_operations(pl.DataFrame([{c: values[c] if values[c] != "" else None for c in EDITOR_COLUMNS}], strict=False))
            if position == NEW_OPERATION:
                state["pick"] = edited.height
                _commit(state, pl.concat([edited, changed], how="vertical_relaxed"))
            else:
                _commit(state, pl.concat([before, changed, after], how="vertical_relaxed"))
        if delete and position != NEW_OPERATION:
            state["pick"] = max(position - 1, 0)
            _commit(state, pl.concat([before, after]))


def _add_to_basket(
    key: str, edited: pl.DataFrame, valid: bool, item_cd: str, item_nm: str | None, candidate_id: str, version: str
) -> None:
    basket = get_basket()
    code_col, rout_col = st.columns([3, 1])
    code = code_col.text_input(tr("editor.item_cd"), **keep(f"editor.item_cd.{key}", item_cd)).strip()
    rout_no = rout_col.text_input(tr("editor.rout_no"), **keep(f"editor.rout_no.{key}", DEFAULT_ROUT_NO)).strip()
    if code and code in basket:
        st.info(tr("editor.will_replace", item=code))
    clicked = st.button(
        tr("editor.add"), type="primary", icon=":material/shopping_basket:", key=f"editor.add.{key}",
        disabled=not (valid and code and rout_no),
        help=None if valid else tr("editor.fix_first"),
    )
    if clicked:
        routing = BasketRouting(
            item_cd=code, rout_no=rout_no, operations=edited,
            item_nm=item_nm if code == item_cd else None, candidate_id=candidate_id, model_version=version,
        )
        replaced = basket.add(routing)
        message = "editor.replaced" if replaced else "editor.added"
        st.success(tr(message, item=code, n=len(basket)))


def _input_key(
    mode: str, item_cd: str | None, attributes: dict[str, object] | None, top_k: int, max_candidates: int,
    lot_size: float, version: str,
) -> tuple[Any, ...] | None:
    """Return everything a prediction depends on, or None when there is nothing to predict.

    A stored result is shown only while this key is unchanged, so a result never
    appears under another item, other attributes, options or model version.
    """
    if mode == "existing":
        if item_cd is None:
            return None
        subject: Any = item_cd
    else:
        subject = tuple(sorted((name, repr(value)) for name, value in (attributes or {}).items()))
    return (mode, subject, top_k, max_candidates, float(lot_size), version)


def _prediction(predictor: Predictor, settings: Settings) -> None:
    """Draw the inputs, predict on request and show the result that belongs to the current input."""
    mode = st.radio(
        tr("predict.mode"), options=["existing", "new"], horizontal=True,
        format_func=lambda m: tr(f"predict.mode.{m}"), **keep("predict.mode", "existing", per_language=True),
    )
    left, right = st.columns([3, 1])
    with right:
        top_k = st.slider(tr("predict.top_k"), min_value=1, max_value=50, **keep("predict.top_k", settings.top_k))
        max_candidates = st.slider(tr("predict.max_candidates"), min_value=1, max_value=10, **keep("predict.max_candidates", settings.max_candidates))
        lot_size = st.number_input(tr("predict.lot_size"), min_value=1.0, max_value=float(MAX_LOT_SIZE), step=1.0, format="%g", **keep("predict.lot_size", float(settings.default_lot_size)))
    with left:
        if mode == "existing":
            item_cd = _pick_existing_item(predictor)
            attributes = None
        else:
            item_cd = None
            attributes = _new_item_form(predictor)
    run = st.button(tr("predict.run"), type="primary", disabled=(mode == "existing" and item_cd is None))
    current = _input_key(mode, item_cd, attributes, top_k, max_candidates, lot_size, predictor.bundle.version)

    if run:
        try:
            options = PredictionOptions.from_settings(settings, top_k=top_k, max_candidates=max_candidates, lot_size=lot_size)
            if mode == "existing":
                result = predictor.predict_items([item_cd], options)
            else:
                result = predictor.predict_attributes([attributes], options)
            st.session_state[RESULT_KEY] = {
                "result": result, "lot_size": lot_size, "version": predictor.bundle.version, "input": current,
            }
        except RoutingError as exc:
            show_error(exc)
            return
    stored = st.session_state.get(RESULT_KEY)
    # A search without a match hides the last result silently because the search shows why.
    if stored is None or current is None:
        return
    if stored.get("input") != current:
        previous = stored.get("input") or ()
        if previous[:-1] == current[:-1]:
            # Only the model changed (the key ends with the model version): someone promoted or rolled back.
            st.warning(tr("predict.model_changed", old=stored["version"], new=predictor.bundle.version))
        else:
            st.info(tr("predict.stale", item=stored["result"].queries.get_column("item_cd")[0]))
        return
    _show_result(stored["result"], predictor, stored["lot_size"], stored["version"])


def main() -> None:
    settings = get_settings()
    st.title(tr("predict.title"))
    st.caption(tr("predict.caption"))
    predictor = current_predictor(settings)
    if predictor is None:
        return
    st.session_state["_predictor_features"] = predictor.bundle.encoder.used_features_
    # Filled last: comparing the model's data with the session's may read the data first.
    notice = st.container()
    _prediction(predictor, settings)
    with notice:
        model_data_notice(predictor.bundle.manifest, settings, hint="model.other_data_predict")


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
