"""Prediction page (예측): pick an existing item or enter a new one, then compare routing candidates."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from pages.common import current_predictor, get_settings, keep, show_error, tr
from routing_core.errors import RoutingError
from routing_core.features import MISSING_CATEGORY
from routing_core.predict import TIME_KINDS, PredictionOptions, PredictionResult, Predictor

MAX_LISTED_ITEMS = 200
RESULT_KEY = "predict.result"


def _warning_text(code: str) -> str:
    name, _, detail = code.partition(":")
    if name == "attributes_missing":
        return tr("warning.attributes_missing", n=detail)
    if name == "unseen_category":
        column, _, value = detail.partition("=")
        return tr("warning.unseen_category", column=tr(f"feature.{column}"), value=value)
    return tr(f"warning.{name}")


def _pick_existing_item(predictor: Predictor) -> str | None:
    items = predictor.bundle.items
    query = st.text_input(tr("predict.search"), help=tr("predict.search_help"), **keep("predict.search", ""))
    text = (query or "").strip()
    if text:
        matches = items.filter(
            pl.col("ITEM_CD").str.contains(text, literal=True)
            | pl.col("ITEM_NM").fill_null("").str.to_lowercase().str.contains(text.lower(), literal=True)
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
                    tr(f"feature.{name}"), options=options, accept_new_options=True,
                    format_func=lambda v: "—" if v is None else v, **keep(f"predict.new.{name}", None),
                )
            else:
                attributes[name] = st.number_input(tr(f"feature.{name}"), value=None, min_value=0.0, step=1.0, **keep(f"predict.new.{name}", None))
    return attributes


def _operations_table(operations: pl.DataFrame) -> pl.DataFrame:
    def span(kind: str) -> pl.Expr:
        return pl.format("{} – {}", pl.col(f"{kind}_min_p25").round(2), pl.col(f"{kind}_min_p75").round(2))

    return operations.sort("pos").select(
        pl.col("proc_seq").alias(tr("col.proc_seq")),
        pl.col("job_cd").alias(tr("col.job_cd")),
        pl.col("job_nm").alias(tr("col.job_nm")),
        pl.col("res_cd").alias(tr("col.res_cd")),
        pl.col("res_dis").alias(tr("col.res_dis")),
        pl.col("inside_flag").replace_strict({"Y": tr("flag.inside.Y"), "N": tr("flag.inside.N")}, default=None).alias(tr("col.inside_flag")),
        pl.col("setup_min").round(2).alias(tr("col.setup_min")),
        span("setup").alias(tr("col.setup_range")),
        pl.col("run_min").round(3).alias(tr("col.run_min")),
        span("run").alias(tr("col.run_range")),
        pl.col("queue_min").round(1).alias(tr("col.queue_min")),
        pl.col("wait_min").round(1).alias(tr("col.wait_min")),
        pl.col("move_min").round(1).alias(tr("col.move_min")),
        pl.col("time_source").replace_strict(
            {s: tr(f"predict.time_source.{s}") for s in ("actual", "planned", "mixed")}, default=None
        ).alias(tr("col.time_source")),
        pl.col("n_items").alias(tr("col.n_items")),
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


def _feature_names() -> dict[str, str]:
    predictor = st.session_state.get("_predictor_features", [])
    return {name: tr(f"feature.{name}") for name in predictor}


def _show_result(result: PredictionResult, predictor: Predictor, lot_size: float) -> None:
    query = result.queries.row(0, named=True)
    st.subheader(tr("predict.result_for", item=query["item_cd"]))
    for code in query["warnings"]:
        st.warning(_warning_text(code))
    candidates = result.candidates.sort("rank")
    if candidates.height == 0:
        st.info(tr("predict.no_candidates"))
        return
    actual = predictor.bundle.routings.filter(pl.col("ITEM_CD") == query["item_cd"]).sort("pos")
    actual_signature = actual.get_column("JOB_CD").to_list()

    tabs = st.tabs([tr("predict.candidate_tab", rank=row["rank"], score=row["score"]) for row in candidates.iter_rows(named=True)])
    for tab, candidate in zip(tabs, candidates.iter_rows(named=True)):
        with tab:
            cid = candidate["candidate_id"]
            operations = result.operations.filter(pl.col("candidate_id") == cid)
            support = result.support.filter(pl.col("candidate_id") == cid)
            c1, c2, c3, c4 = st.columns(4)
            c1.metric(tr("predict.score"), f"{candidate['score']:.3f}")
            c2.metric(tr("predict.n_support"), candidate["n_support"])
            lead = candidate["lead_time_min"] or 0.0
            c3.metric(tr("predict.lead_time", lot=lot_size), tr("predict.lead_time_value", minutes=lead, hours=lead / 60))
            c4.metric(tr("predict.n_operations"), operations.height)
            st.caption(f"{cid} · " + tr("predict.explain", n=candidate["n_support"]))
            if actual_signature:
                same = candidate["signature"] == actual_signature
                (st.success if same else st.info)(tr("predict.same_as_actual" if same else "predict.differs_from_actual"))
            st.markdown(f"**{tr('predict.operations')}**")
            st.dataframe(_operations_table(operations), hide_index=True, width="stretch")
            st.markdown(f"**{tr('predict.chart')}**")
            st.plotly_chart(_time_chart(operations, lot_size), key=f"chart-{cid}", width="stretch")
            st.markdown(f"**{tr('predict.support')}**")
            st.dataframe(_support_table(support), hide_index=True, width="stretch")
    if actual_signature:
        with st.expander(tr("predict.actual_routing")):
            st.dataframe(
                actual.select("PROC_SEQ", "JOB_CD", "JOB_NM", "RES_CD", "setup_min", "run_min_per_piece", "queue_min", "wait_min", "move_min"),
                hide_index=True, width="stretch",
            )
    st.caption(tr("predict.seconds", ms=result.seconds * 1000))


def main() -> None:
    settings = get_settings()
    st.title(tr("predict.title"))
    st.caption(tr("predict.caption"))
    try:
        predictor = current_predictor(settings)
    except RoutingError as exc:
        show_error(exc)
        return
    if predictor is None:
        return
    st.session_state["_predictor_features"] = predictor.bundle.encoder.used_features_

    mode = st.radio(
        tr("predict.mode"), options=["existing", "new"], horizontal=True,
        format_func=lambda m: tr(f"predict.mode.{m}"), **keep("predict.mode", "existing"),
    )
    left, right = st.columns([3, 1])
    with right:
        top_k = st.slider(tr("predict.top_k"), min_value=1, max_value=50, **keep("predict.top_k", settings.top_k))
        max_candidates = st.slider(tr("predict.max_candidates"), min_value=1, max_value=10, **keep("predict.max_candidates", settings.max_candidates))
        lot_size = st.number_input(tr("predict.lot_size"), min_value=1.0, step=1.0, **keep("predict.lot_size", float(settings.default_lot_size)))
    with left:
        if mode == "existing":
            item_cd = _pick_existing_item(predictor)
            attributes = None
        else:
            item_cd = None
            attributes = _new_item_form(predictor)
    run = st.button(tr("predict.run"), type="primary", disabled=(mode == "existing" and item_cd is None))

    if run:
        try:
            options = PredictionOptions.from_settings(settings, top_k=top_k, max_candidates=max_candidates, lot_size=lot_size)
            if mode == "existing":
                result = predictor.predict_items([item_cd], options)
            else:
                result = predictor.predict_attributes([attributes], options)
            st.session_state[RESULT_KEY] = {"result": result, "lot_size": lot_size, "version": predictor.bundle.version}
        except RoutingError as exc:
            show_error(exc)
            return
    stored = st.session_state.get(RESULT_KEY)
    if stored is not None:
        _show_result(stored["result"], predictor, stored["lot_size"])


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
