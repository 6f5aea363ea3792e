"""ERP export page (ERP 내보내기): the basket, a preview of the ERP rows, checks, downloads and the staging-table write."""

from __future__ import annotations

import logging
from datetime import date, datetime

import polars as pl
import streamlit as st

from pages.basket import column_label, get_basket, show_problems
from pages.common import get_settings, keep, loaded_data, show_error, tr
from pages.report_view import EMPTY_CELL
from routing_core.config import Settings
from routing_core.errors import ExportError, RoutingError
from routing_core.export import (
    EXPORT_CSV_ENCODINGS,
    ExportBatch,
    FileExport,
    build_export,
    erp_export_available,
    export_fingerprint,
    registered_routings,
    to_csv,
    to_xlsx,
    unencodable_characters,
    write_to_erp,
)
from routing_core.i18n import has_key
from routing_core.odbc import odbc_available

logger = logging.getLogger(__name__)

DRY_RUN_KEY = "export.dry_run_passed"  # fingerprint of the rows whose dry run passed
WRITTEN_KEY = "export.written"  # fingerprint of the rows last written
LAST_WRITE_KEY = "export.last_write"  # message of the last successful write
FILES_KEY = "export.files"  # (fingerprint, kind) -> FileExport of the current rows

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _basket_section() -> None:
    basket = get_basket()
    st.subheader(tr("export.basket", n=len(basket)))
    summary = basket.summary().select(
        pl.col("ITEM_CD").alias(column_label("ITEM_CD")),
        pl.col("ITEM_NM").alias(tr("col.item_nm")),
        pl.col("ROUT_NO").alias(column_label("ROUT_NO")),
        pl.col("operations").alias(tr("export.n_operations")),
        pl.col("candidate_id").alias(tr("export.candidate")),
        pl.col("added_at").dt.strftime("%Y-%m-%d %H:%M").alias(tr("export.added_at")),
    )
    st.dataframe(summary, hide_index=True, width="stretch", placeholder=EMPTY_CELL)
    st.caption(tr("export.replace_note"))

    codes = [r.item_cd for r in basket.routings()]
    remove_col, clear_col = st.columns([3, 1])
    chosen = remove_col.multiselect(tr("export.remove_pick"), codes, key="export.remove_pick", placeholder=tr("export.remove_placeholder"))
    if remove_col.button(tr("export.remove"), disabled=not chosen):
        for code in chosen:
            basket.remove(code)
        st.rerun()
    if clear_col.button(tr("export.clear"), type="tertiary", icon=":material/delete:"):
        basket.clear()
        st.rerun()


def _cached_file(batch: ExportBatch, fingerprint: str, kind: str) -> FileExport:
    """Return the download of the current rows, built once per rows and kind (``xlsx`` or a CSV encoding)."""
    files: dict[tuple[str, str], FileExport] = st.session_state.setdefault(FILES_KEY, {})
    cached = files.get((fingerprint, kind))
    if cached is None:
        cached = to_xlsx(batch) if kind == "xlsx" else to_csv(batch, kind)
        files.clear()  # keep only the current rows' files
        files[(fingerprint, kind)] = cached
    return cached


def _downloads(batch: ExportBatch, fingerprint: str, settings: Settings) -> None:
    st.subheader(tr("export.download"))
    stamp = date.today().strftime("%Y%m%d")
    xlsx_col, csv_col = st.columns(2)
    with xlsx_col:
        xlsx = _cached_file(batch, fingerprint, "xlsx")
        st.download_button(
            tr("export.download_xlsx"), data=xlsx.data, file_name=f"routing_export_{stamp}.xlsx", mime=XLSX_MIME,
            on_click="ignore", icon=":material/download:", key="export.download_xlsx", type="primary",
        )
        if xlsx.removed_characters:
            st.warning(tr("export.control_removed", n=xlsx.removed_characters))

    with csv_col:
        default = settings.export_csv_encoding if settings.export_csv_encoding in EXPORT_CSV_ENCODINGS else EXPORT_CSV_ENCODINGS[0]
        encoding = st.selectbox(
            tr("export.csv_encoding"), EXPORT_CSV_ENCODINGS, format_func=lambda e: tr(f"export.encoding.{e}"),
            **keep("export.csv_encoding", default),
        )
        bad = unencodable_characters(batch.rows, encoding)
        if bad.height:
            st.error(tr("export.cp949_refused", n=bad.height))
            st.dataframe(
                bad.select(
                    (pl.col("row") + 1).alias(tr("editor.problem.row")),
                    pl.col("ITEM_CD").alias(column_label("ITEM_CD")),
                    pl.col("PROC_SEQ").alias(column_label("PROC_SEQ")),
                    pl.col("column").replace_strict({c: column_label(c) for c in batch.rows.columns}, default=pl.col("column"))
                    .alias(tr("editor.problem.column")),
                    pl.col("value").alias(tr("export.value")),
                    pl.col("characters").alias(tr("export.characters")),
                ),
                hide_index=True, width="stretch",
            )
            st.download_button(tr("export.download_csv"), data=b"", disabled=True, key="export.download_csv_refused", on_click="ignore")
            return
        csv = _cached_file(batch, fingerprint, encoding)
        st.download_button(
            tr("export.download_csv"), data=csv.data, file_name=f"routing_export_{stamp}.csv", mime="text/csv",
            on_click="ignore", icon=":material/download:", key="export.download_csv",
        )
        st.caption(tr(f"export.encoding_note.{encoding}"))


def _show_export_error(exc: RoutingError) -> None:
    """Show why an export was rejected, with the offending rows, or the generic error display."""
    if not isinstance(exc, ExportError):
        show_error(exc)
        return
    st.error(tr("export.failed"))
    st.caption(str(exc))
    rows = exc.rows
    if not rows:
        return
    messages = []
    for row in rows:
        key = f"odbc.rule.{row.get('rule')}"
        editor_key = f"editor.rule.{row.get('rule')}"
        if has_key(key):
            messages.append(tr(key, column=column_label(row.get("column")), value=row.get("value") or "", reason=row.get("reason") or ""))
        elif has_key(editor_key):
            messages.append(tr(editor_key, column=column_label(row.get("column")), value=row.get("value") or ""))
        else:
            messages.append(row.get("reason") or "")
    st.dataframe(
        pl.DataFrame({
            tr("editor.problem.row"): [None if r.get("row") is None else r["row"] + 1 for r in rows],
            column_label("ITEM_CD"): [r.get("ITEM_CD") for r in rows],
            tr("editor.problem.column"): [column_label(r.get("column")) for r in rows],
            tr("editor.problem.message"): messages,
        }, strict=False),
        hide_index=True, width="stretch",
    )


def _erp_section(batch: ExportBatch, fingerprint: str, settings: Settings) -> None:
    st.subheader(tr("export.erp"))
    last = st.session_state.get(LAST_WRITE_KEY)
    if last:
        st.success(last)
    if not erp_export_available(settings):
        st.info(tr("export.erp_unavailable"))
        return
    available, detail = odbc_available()
    if not available:
        st.warning(tr("odbc.unavailable"))
        st.caption(detail)
        return

    st.caption(tr("export.erp_target", table=settings.staging_table, rows=batch.rows.height, routings=batch.n_routings))
    written = st.session_state.get(WRITTEN_KEY) == fingerprint
    if written:
        st.info(tr("export.already_written"))
    dry_col, write_col = st.columns(2)
    if dry_col.button(tr("export.dry_run"), icon=":material/fact_check:", key="export.dry_run", width="stretch"):
        st.session_state.pop(DRY_RUN_KEY, None)
        try:
            checked = write_to_erp(batch, settings, dry_run=True)
        except RoutingError as exc:
            _show_export_error(exc)
        else:
            st.session_state[DRY_RUN_KEY] = fingerprint
            st.success(tr("export.dry_run_ok", rows=checked.rows_checked, table=checked.table))
    passed = st.session_state.get(DRY_RUN_KEY) == fingerprint
    if not passed and not written:
        st.caption(tr("export.dry_run_first"))
    if write_col.button(tr("export.write"), type="primary", icon=":material/upload:", key="export.write", width="stretch",
                        disabled=not passed or written):
        try:
            result = write_to_erp(batch, settings)
        except RoutingError as exc:
            st.session_state.pop(DRY_RUN_KEY, None)
            _show_export_error(exc)
            return
        st.session_state.pop(DRY_RUN_KEY, None)
        st.session_state[WRITTEN_KEY] = fingerprint
        message = tr("export.written", rows=result.rows_written, routings=result.routings_written,
                     table=result.table, time=datetime.now().strftime("%H:%M:%S"))
        st.session_state[LAST_WRITE_KEY] = message
        st.rerun()


def _registered_notice(settings: Settings) -> None:
    """Warn about basket items that already have a routing in use in the ERP data."""
    try:
        active = loaded_data(settings).views.active_routings
    except RoutingError as exc:
        # The notice is a help, not a condition of the export: without data there is nothing to compare.
        logger.warning("registered-routing check skipped: %s", exc)
        return
    found = registered_routings(get_basket().routings(), active)
    if found.height == 0:
        return
    st.warning(tr("export.registered", n=found.height))
    st.dataframe(
        found.rename({
            "ITEM_CD": column_label("ITEM_CD"),
            "ROUT_NO": tr("export.registered.new_rout_no"),
            "ERP_ROUT_NO": tr("export.registered.erp_rout_no"),
            "ERP_OPERATIONS": tr("export.registered.erp_operations"),
        }),
        hide_index=True,
    )


def main() -> None:
    settings = get_settings()
    st.title(tr("export.title"))
    st.caption(tr("export.caption"))
    basket = get_basket()
    if len(basket) == 0:
        st.warning(tr("export.empty"))
        st.page_link("pages/predict.py", label=tr("export.go_predict"), icon=":material/online_prediction:")
        st.page_link("pages/batch.py", label=tr("export.go_batch"), icon=":material/list_alt:")
        last = st.session_state.get(LAST_WRITE_KEY)
        if last:
            st.caption(last)
        return

    _basket_section()
    _registered_notice(settings)
    valid_from = st.date_input(tr("export.valid_from"), help=tr("export.valid_from_help"), **keep("export.valid_from", date.today()))
    batch = build_export(basket.routings(), valid_from)

    st.subheader(tr("export.preview"))
    st.caption(tr("export.preview_caption", rows=batch.rows.height, routings=batch.n_routings))
    st.dataframe(batch.rows, hide_index=True, width="stretch", placeholder=EMPTY_CELL)
    if batch.problems.height:
        show_problems(batch.problems, with_item=True)
        st.info(tr("export.fix_in_editor"))
        return
    st.success(tr("export.check_ok", rows=batch.rows.height, routings=batch.n_routings))

    fingerprint = export_fingerprint(batch)
    _downloads(batch, fingerprint, settings)
    _erp_section(batch, fingerprint, settings)


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
