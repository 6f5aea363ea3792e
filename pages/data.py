"""Data page (데이터): choose the source, test the ERP connection, see row counts and the validation report."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from pages.common import SOURCE_OVERRIDES_KEY, get_settings, lang, loaded_data, show_error, tr
from pages.report_view import EMPTY_CELL, rule_name, show_notes, show_rows
from routing_core.config import Settings
from routing_core.i18n import localized
from routing_core.odbc import mask_connection_string, odbc_available, test_connection

SOURCES = ["sample", "files", "odbc"]


def _source_form(settings: Settings) -> None:
    """Let the user pick the session's data source; applying it clears the cached data."""
    available, detail = odbc_available()
    with st.form("data-source"):
        source = st.radio(
            tr("data.source"), SOURCES, index=SOURCES.index(settings.data_source), horizontal=True,
            format_func=lambda s: tr(f"data.source.{s}"),
        )
        folder = st.text_input(tr("data.folder"), value=str(settings.data_dir), help=tr("data.folder_help"))
        current = settings.odbc_connection_string.get_secret_value() if settings.odbc_connection_string else ""
        connection = st.text_input(
            tr("data.connection_string"), value="", type="password",
            placeholder=mask_connection_string(current) if current else "Driver={ODBC Driver 18 for SQL Server};Server=…;Database=…;Uid=…;Pwd=…",
            help=tr("data.connection_help"),
        )
        applied = st.form_submit_button(tr("data.apply"))
    if not available:
        st.warning(tr("data.odbc_unavailable", detail=detail))
    if applied:
        overrides: dict[str, object] = {"data_source": source}
        if source in ("sample", "files"):
            overrides["data_dir"] = Path(folder.strip())
        if source == "odbc":
            if not available:
                st.error(tr("data.odbc_unavailable", detail=detail))
                return
            if connection.strip():
                overrides["odbc_connection_string"] = connection.strip()
            elif current:
                overrides["odbc_connection_string"] = current
        st.session_state[SOURCE_OVERRIDES_KEY] = overrides
        st.cache_data.clear()
        st.rerun()


def _connection_test(settings: Settings) -> None:
    if settings.data_source != "odbc":
        return
    if settings.odbc_connection_string:
        st.caption(tr("data.connection_masked", text=mask_connection_string(settings.odbc_connection_string.get_secret_value())))
    if st.button(tr("data.test_connection")):
        with st.spinner(tr("data.testing")):
            outcome = test_connection(settings)
        if outcome["ok"]:
            st.success(tr("data.connection_ok", driver=outcome["driver"] or "?", server=outcome["server"] or "?",
                          version=outcome["server_version"] or "?", seconds=outcome["seconds"]))
        else:
            st.error(tr("data.connection_failed", reason=outcome["error"] or "; ".join(f"{k}: {v}" for k, v in outcome["errors"].items())))
        if outcome["row_counts"]:
            counts = pl.DataFrame(
                {"view": list(outcome["row_counts"]), "rows": list(outcome["row_counts"].values())},
                schema={"view": pl.String, "rows": pl.Int64},
            )
            st.dataframe(
                counts.rename({"view": tr("data.rejected_col.view"), "rows": tr("data.counts")}),
                hide_index=True, placeholder=EMPTY_CELL,
            )


def _report(settings: Settings) -> None:
    with st.spinner(tr("stage.load")):
        loaded = loaded_data(settings)
    views, report = loaded.views, loaded.report
    st.caption(localized(loaded.source_description, lang()))

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
        rules = sorted(counts, key=lambda rule: -counts[rule])
        table = pl.DataFrame({
            tr("data.rule"): [rule_name(rule) for rule in rules],
            tr("data.rule_code"): rules,
            tr("data.count"): [counts[rule] for rule in rules],
        })
        st.dataframe(table, hide_index=True, width="stretch", placeholder=EMPTY_CELL)
    if report.rejected is not None and report.rejected.height:
        st.markdown(f"**{tr('data.rejected')}**")
        show_rows(report.rejected)
    if report.changed is not None and report.changed.height:
        st.markdown(f"**{tr('data.changed')}**")
        show_rows(report.changed)
    if report.encodings:
        st.markdown(f"**{tr('data.encodings')}**")
        encodings = pl.DataFrame({tr("data.file"): list(report.encodings), tr("data.encoding"): list(report.encodings.values())})
        st.dataframe(encodings, hide_index=True, placeholder=EMPTY_CELL)
    if report.notes:
        st.markdown(f"**{tr('data.notes')}**")
        show_notes(report.notes)

def main() -> None:
    settings = get_settings()
    st.title(tr("data.title"))
    _source_form(settings)
    st.write(f"**{tr('data.source')}:** {tr(f'data.source.{settings.data_source}')}")
    _connection_test(settings)
    if st.button(tr("data.reload")):
        st.cache_data.clear()
    try:
        _report(settings)
    except Exception as exc:  # a source that cannot be read is shown, the page stays usable
        show_error(exc)


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
