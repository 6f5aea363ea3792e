"""Time analysis page (시간 분석): planned times per resource and operation, planned against actual."""

from __future__ import annotations

from datetime import date

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from pages.common import MISSING_TEXT, get_settings, keep, loaded_data, show_error, tr
from routing_core.i18n import has_key
from routing_core.tables import to_csv_bytes, to_xlsx_bytes
from routing_core.timeagg import (
    MAX_LOT_SIZE,
    MEASURES,
    TimeFilters,
    aggregate_times,
    apply_filters,
    count_zero_good_quantity,
    lead_time_min,
)

GROUP_OPTIONS = ["RES_CD", "JOB_CD", "ITEM_CD", "INSIDE_FLAG", "ITEM_GRP1", "ITEM_MATERIAL", "PART_TYPE"]
ITEM_GROUP_COLUMNS = {"ITEM_GRP1", "ITEM_MATERIAL", "PART_TYPE"}
SUMMARY_COLUMNS = [
    "n_operations", "n_orders", "planned_setup_min_median", "planned_run_min_median", "planned_run_min_p90",
    "planned_run_min_trimmed_mean", "actual_setup_min_median", "actual_run_min_n", "actual_run_min_median",
    "actual_run_min_p25", "actual_run_min_p75", "actual_run_min_p90", "actual_run_min_trimmed_mean",
    "actual_run_min_n_outliers", "run_ratio_actual_to_planned", "n_zero_good_qty",
]
TOP_GROUPS = 20
KINDS = ["setup", "run", "queue", "wait", "move"]
# The name shown beside a code: the operation name of a JOB_CD, the resource name of a RES_CD.
NAME_COLUMNS = {"JOB_CD": "JOB_NM", "RES_CD": "RES_DIS"}
NAME_LABELS = {"JOB_NM": "col.job_nm", "RES_DIS": "col.res_dis"}
# Characters of a name kept in a chart's tick label; the hover shows the whole name.
TICK_NAME_CHARS = 8


def _options(frame: pl.DataFrame, column: str) -> list[str]:
    return frame.get_column(column).drop_nulls().unique().sort().to_list()


def _filters(items: pl.DataFrame, routings: pl.DataFrame, work_orders: pl.DataFrame) -> TimeFilters:
    with st.expander(tr("times.filters"), expanded=True):
        c1, c2, c3 = st.columns(3)
        groups = c1.multiselect(tr("feature.ITEM_GRP1"), _options(items, "ITEM_GRP1"), placeholder=tr("times.choose"), **keep("times.groups", []))
        materials = c2.multiselect(tr("feature.ITEM_MATERIAL"), _options(items, "ITEM_MATERIAL"), placeholder=tr("times.choose"), **keep("times.materials", []))
        part_types = c3.multiselect(tr("feature.PART_TYPE"), _options(items, "PART_TYPE"), placeholder=tr("times.choose"), **keep("times.part_types", []))
        c4, c5, c6 = st.columns(3)
        resources = c4.multiselect(tr("col.res_cd"), _options(routings, "RES_CD"), placeholder=tr("times.choose"), **keep("times.resources", []))
        inside = c5.radio(
            tr("col.inside_flag"), ["all", "Y", "N"], horizontal=True,
            format_func=lambda v: tr("times.all") if v == "all" else tr(f"flag.inside.{v}"), **keep("times.inside", "all", per_language=True),
        )
        dates = work_orders.get_column("REPORT_DT").drop_nulls()
        first = dates.min() if dates.len() else date.today()
        last = dates.max() if dates.len() else date.today()
        period = c6.date_input(tr("times.report_period"), **keep("times.period", (first, last)))
    report_from, report_to = (period if isinstance(period, (list, tuple)) and len(period) == 2 else (None, None))
    return TimeFilters(
        item_groups=tuple(groups) or None,
        materials=tuple(materials) or None,
        part_types=tuple(part_types) or None,
        res_cds=tuple(resources) or None,
        inside_flag=None if inside == "all" else inside,
        report_from=report_from,
        report_to=report_to,
    )


def _code_names(routings: pl.DataFrame, code: str) -> pl.DataFrame:
    """Return the most common name of each code in ``routings``: JOB_NM per JOB_CD or RES_DIS per RES_CD.

    Ties go to the alphabetically first name, so the result does not depend on row order.
    """
    name = NAME_COLUMNS[code]
    return (
        routings.filter(pl.col(code).is_not_null() & pl.col(name).is_not_null())
        .group_by(code, name).len()
        .sort([code, "len", name], descending=[False, True, False])
        .unique(code, keep="first", maintain_order=True)
        .select(code, name)
    )


def _with_names(table: pl.DataFrame, code: str, routings: pl.DataFrame) -> pl.DataFrame:
    """Add the name column of ``code`` right after it (a null name when the code has none)."""
    name = NAME_COLUMNS[code]
    joined = table.join(_code_names(routings, code), on=code, how="left", maintain_order="left")
    return joined.select(code, name, *[c for c in table.columns if c != code])


def _code_label(code: pl.Expr, name: pl.Expr, max_chars: int | None = None) -> pl.Expr:
    """Return "code name", the name cut to ``max_chars`` with "…", or the code alone when there is no name."""
    if max_chars is not None:
        name = pl.when(name.str.len_chars() > max_chars).then(name.str.slice(0, max_chars) + "…").otherwise(name)
    return pl.when(name.is_null()).then(code).otherwise(pl.concat_str([code, name], separator=" "))


def _resource_chart(by_resource: pl.DataFrame) -> go.Figure:
    top = by_resource.with_columns(
        pl.sum_horizontal(f"planned_{k}_min_sum" for k in KINDS).alias("_total")
    ).sort("_total", descending=True, nulls_last=True).head(TOP_GROUPS)
    names = top.get_column("RES_DIS").fill_null("").to_list()
    figure = go.Figure()
    for kind in KINDS:
        figure.add_bar(
            name=tr(f"time.{kind}"), x=top["RES_CD"].to_list(), y=top[f"planned_{kind}_min_sum"].fill_null(0).to_list(),
            customdata=names, hovertemplate="%{x} %{customdata}<br>%{y:,.0f}",
        )
    figure.update_layout(
        barmode="stack", height=420, margin=dict(l=10, r=10, t=40, b=10), yaxis_title=tr("times.minutes_sum"),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, traceorder="normal"), xaxis_tickangle=-45,
        yaxis_tickformat=",.0f",
    )
    return figure


def _job_chart(by_job: pl.DataFrame, with_actual: bool) -> go.Figure:
    top = by_job.sort(["n_orders", "n_operations"], descending=True).head(TOP_GROUPS)
    labels = top.select(_code_label(pl.col("JOB_CD"), pl.col("JOB_NM"), TICK_NAME_CHARS)).to_series().to_list()
    full_labels = top.select(_code_label(pl.col("JOB_CD"), pl.col("JOB_NM"))).to_series().to_list()
    series = [("planned", tr("times.planned"))] + ([("actual", tr("times.actual"))] if with_actual else [])
    figure = go.Figure()
    for prefix, label in series:
        median = top[f"{prefix}_run_min_median"]
        figure.add_bar(
            name=label, x=labels, y=median.to_list(), customdata=full_labels, hovertemplate="%{customdata}<br>%{y:,.2f}",
            error_y=dict(
                type="data", symmetric=False,
                array=(top[f"{prefix}_run_min_p75"] - median).to_list(),
                arrayminus=(median - top[f"{prefix}_run_min_p25"]).to_list(),
            ),
        )
    figure.update_layout(
        barmode="group", height=420, margin=dict(l=10, r=10, t=40, b=10), yaxis_title=tr("times.run_per_piece"),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0), xaxis_tickangle=-45,
    )
    return figure


def _lead_time_chart(lead_times: pl.DataFrame, lot_size: float) -> go.Figure:
    hours = (lead_times.get_column("lead_time_min").drop_nulls() / 60).to_list()
    figure = go.Figure(go.Histogram(x=hours, nbinsx=40, name=tr("times.lead_time")))
    figure.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=tr("times.lead_time_hours", lot=lot_size), yaxis_title=tr("times.items"))
    return figure


def _display_table(table: pl.DataFrame, by: str, all_columns: bool) -> pl.DataFrame:
    keys = [by, NAME_COLUMNS[by]] if by in NAME_COLUMNS else [by]
    columns = [c for c in table.columns if c not in keys] if all_columns else SUMMARY_COLUMNS
    shown = table.select(*keys, *columns)
    if by == "INSIDE_FLAG":
        shown = shown.with_columns(pl.col(by).replace_strict({"Y": tr("flag.inside.Y"), "N": tr("flag.inside.N")}, default=pl.col(by)))
    floats = [c for c, dtype in shown.schema.items() if dtype.is_float()]
    shown = shown.with_columns(pl.col(floats).round(3))
    labels = {by: tr(f"times.group.{by}")}
    labels.update({name: tr(NAME_LABELS[name]) for name in keys[1:]})
    labels.update({c: _column_label(c) for c in columns})
    return shown.rename(labels)


def _column_label(column: str) -> str:
    """Return the page label of an aggregate column: its own text, else measure and statistic texts joined."""
    if has_key(f"times.col.{column}"):
        return tr(f"times.col.{column}")
    for measure in MEASURES:
        if column.startswith(f"{measure}_"):
            stat = column.removeprefix(f"{measure}_")
            if has_key(f"times.stat.{stat}"):
                return f"{tr(f'times.measure.{measure}')} {tr(f'times.stat.{stat}')}"
    return column


def main() -> None:
    settings = get_settings()
    st.title(tr("times.title"))
    st.caption(tr("times.caption"))
    with st.spinner(tr("stage.load")):
        views = loaded_data(settings).views
    filters = _filters(views.items, views.active_routings, views.work_orders)
    routings, work_orders = apply_filters(views.active_routings, views.work_orders, views.items, filters)
    routings = routings.collect()
    work_orders = work_orders.collect() if work_orders is not None else None
    if routings.height == 0:
        st.info(tr("times.empty"))
        return

    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric(tr("times.n_items"), f"{routings.get_column('ITEM_CD').n_unique():,}")
    c2.metric(tr("times.n_operations"), f"{routings.height:,}")
    c3.metric(tr("times.n_orders"), f"{work_orders.height if work_orders is not None else 0:,}")
    overall = aggregate_times(routings, work_orders, views.items, by=[])
    ratio = overall.get_column("run_ratio_actual_to_planned")[0] if overall.height else None
    c4.metric(tr("times.ratio"), "—" if ratio is None else f"{ratio:.2f}")
    c5.metric(tr("times.zero_good"), f"{count_zero_good_quantity(work_orders) if work_orders is not None else 0:,}")

    lot_size = st.number_input(tr("predict.lot_size"), min_value=1.0, max_value=float(MAX_LOT_SIZE), step=1.0, format="%g", **keep("times.lot_size", float(settings.default_lot_size)))
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{tr('times.chart_resource')}**")
        by_resource = _with_names(aggregate_times(routings, None, None, by=["RES_CD"], stats=["sum"]), "RES_CD", routings)
        st.plotly_chart(_resource_chart(by_resource), width="stretch", key="times-resource")
    with right:
        st.markdown(f"**{tr('times.chart_job')}**")
        by_job = _with_names(aggregate_times(routings, work_orders, None, by=["JOB_CD"], stats=["median", "p25", "p75"]), "JOB_CD", routings)
        with_actual = bool(by_job.get_column("actual_run_min_median").is_not_null().any())
        with_planned = bool((by_job.get_column("planned_run_min_median").fill_null(0) > 0).any())
        if not with_actual:
            st.info(tr("times.no_actual" if with_planned else "times.no_run_times"))
        if with_actual or with_planned:
            st.plotly_chart(_job_chart(by_job, with_actual), width="stretch", key="times-job")
    st.markdown(f"**{tr('times.chart_lead_time')}**")
    st.plotly_chart(_lead_time_chart(lead_time_min(routings, lot_size), lot_size), width="stretch", key="times-lead")
    st.caption(tr("times.lead_time_caption"))

    st.subheader(tr("times.table"))
    g1, g2 = st.columns([2, 1])
    by = g1.selectbox(tr("times.group_by"), GROUP_OPTIONS, format_func=lambda c: tr(f"times.group.{c}"), **keep("times.by", "RES_CD"))
    all_columns = g2.toggle(tr("times.all_columns"), **keep("times.all_columns", False))
    items = views.items if by in ITEM_GROUP_COLUMNS else None
    table = aggregate_times(routings, work_orders, items if items is not None else views.items, by=[by])
    if by in NAME_COLUMNS:
        table = _with_names(table, by, routings)
    shown = _display_table(table, by, all_columns)
    st.dataframe(shown, hide_index=True, width="stretch", placeholder=MISSING_TEXT)
    d1, d2 = st.columns(2)
    d1.download_button(tr("times.download_xlsx"), to_xlsx_bytes(shown, "times"), file_name=f"times_by_{by}.xlsx", on_click="ignore")
    d2.download_button(tr("times.download_csv"), to_csv_bytes(shown), file_name=f"times_by_{by}.csv", mime="text/csv", on_click="ignore")


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
