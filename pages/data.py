"""Data page (데이터): the configured source, row counts and the validation report."""

from __future__ import annotations

import polars as pl
import streamlit as st

from pages.common import get_settings, loaded_data, show_error, tr
from routing_core.i18n import has_key


def _rule_name(rule: str) -> str:
    key = f"validation.rule.{rule}"
    return tr(key) if has_key(key) else rule


def main() -> None:
    settings = get_settings()
    st.title(tr("data.title"))
    st.write(f"**{tr('data.source')}:** {tr(f'data.source.{settings.data_source}')} — `{settings.data_dir}`")
    if st.button(tr("data.reload")):
        st.cache_data.clear()
    with st.spinner(tr("stage.load")):
        loaded = loaded_data(settings)
    views, report = loaded.views, loaded.report

    c1, c2, c3, c4 = st.columns(4)
    c1.metric(tr("data.items"), f"{views.items.height:,}")
    c2.metric(tr("data.routing_rows"), f"{views.routings.height:,}")
    c3.metric(tr("data.active_routings"), f"{views.active_routings.get_column('ITEM_CD').n_unique():,}")
    c4.metric(tr("data.work_orders"), f"{views.work_orders.height:,}")
    st.caption(tr("data.loaded_in", seconds=loaded.seconds) + f" · {tr('data.fingerprint')}: `{loaded.fingerprint[:16]}`")

    st.subheader(tr("data.report"))
    counts = {rule: n for rule, n in report.rule_counts.items() if n}
    if not counts:
        st.success(tr("data.report_empty"))
    else:
        table = pl.DataFrame({"rule": list(counts), "count": list(counts.values())}).sort("count", descending=True)
        st.dataframe(
            table.select(
                pl.col("rule").map_elements(_rule_name, return_dtype=pl.String).alias(tr("data.rule")),
                pl.col("rule").alias("rule"),
                pl.col("count").alias(tr("data.count")),
            ),
            hide_index=True, width="stretch",
        )
    if report.rejected is not None and report.rejected.height:
        st.markdown(f"**{tr('data.rejected')}**")
        st.dataframe(report.rejected, hide_index=True, width="stretch")
    if report.encodings:
        st.markdown(f"**{tr('data.encodings')}**")
        st.dataframe(pl.DataFrame({"file": list(report.encodings), "encoding": list(report.encodings.values())}), hide_index=True)
    if report.notes:
        st.markdown(f"**{tr('data.notes')}**")
        for note in report.notes:
            st.write(f"- {note}")


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
