"""Export of edited routings: editor checks, the basket, ERP rows, xlsx/CSV round trips, the staging write, batch input."""

from __future__ import annotations

import io
import json
import math
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from routing_core import export
from routing_core.cli import main as cli_main
from routing_core.config import FeatureSpec, load_settings
from routing_core.errors import DataError, ExportError
from routing_core.export import Basket, BasketRouting, build_export, check_operations, registered_routings
from routing_core.odbc import ERP_EXPORT_COLUMNS, create_staging_table_sql
from routing_core.predict import PredictionOptions, Predictor
from routing_core.schema import ITEM_VIEW, ROUTING_VIEW, WORK_ORDER_VIEW, clean_schema
from routing_core.sources import read_folder, read_item_list
from routing_core.train import build_bundle
from routing_core.validation import Views, validate_views
from tests.odbc_servers import SQLITE_DRIVER, require_driver, require_pyodbc, sqlite_connection_string

FEATURES = [
    FeatureSpec(name="PART_TYPE", kind="category", weight=3.0),
    FeatureSpec(name="ITEM_MATERIAL", kind="category", weight=2.0),
    FeatureSpec(name="OUTDIAMETER", kind="number", weight=1.0),
]


def _ops(rows: list[dict]) -> pl.DataFrame:
    """Return an editor frame from partial rows; unspecified columns are empty."""
    return export.conform_operations(pl.DataFrame(rows, strict=False)) if rows else export.empty_operations()


def _good_ops() -> pl.DataFrame:
    return _ops([
        {"PROC_SEQ": 10, "JOB_CD": "G10", "JOB_NM": "연삭, \"정밀\"\n2차", "RES_CD": "GRD-01", "WC_CD": "131010",
         "INSIDE_FLG": "Y", "TIME_UNIT": "M", "SETUP_TIME": 30.0, "RUN_TIME": 2.5, "RUN_TIME_QTY": 1.0,
         "QUEUE_TIME": 0.0, "WAIT_TIME": 100.0, "MOVE_TIME": 100.0, "MFG_LT": 0.0, "INSP_FLG": "N", "MILESTONE_FLG": "Y"},
        {"PROC_SEQ": 20, "JOB_CD": "Q30", "JOB_NM": "검사", "RES_CD": "INS-WC1", "INSIDE_FLG": "N", "TIME_UNIT": "H",
         "SETUP_TIME": 0.5, "RUN_TIME": 0.1, "RUN_TIME_QTY": 10.0, "MFG_LT": 3.0, "INSP_FLG": "Y", "BP_CD": "BP-07"},
    ])


def _rules(problems: pl.DataFrame) -> list[tuple[int | None, str, str | None]]:
    return [(r["row"], r["rule"], r["column"]) for r in problems.iter_rows(named=True)]


# --- editor checks ------------------------------------------------------------------------


def test_check_accepts_good_routing() -> None:
    assert check_operations(_good_ops()).height == 0


def test_check_rejects_negative_time() -> None:
    ops = _good_ops().with_columns(pl.when(pl.col("PROC_SEQ") == 20).then(-5.0).otherwise(pl.col("SETUP_TIME")).alias("SETUP_TIME"))

    problems = check_operations(ops)

    assert _rules(problems) == [(1, "negative_time", "SETUP_TIME")]
    assert problems["value"].to_list() == ["-5.0"]
    assert problems["PROC_SEQ"].to_list() == [20]


def test_check_rejects_missing_job_and_resource() -> None:
    ops = _good_ops().with_columns(
        pl.when(pl.col("PROC_SEQ") == 10).then(pl.lit("  ")).otherwise(pl.col("JOB_CD")).alias("JOB_CD"),
        pl.when(pl.col("PROC_SEQ") == 20).then(pl.lit("NULL")).otherwise(pl.col("RES_CD")).alias("RES_CD"),
    )

    assert _rules(check_operations(ops)) == [(0, "missing_job_cd", "JOB_CD"), (1, "missing_res_cd", "RES_CD")]


@pytest.mark.parametrize("value, rule", [(math.nan, "not_finite_time"), (math.inf, "not_finite_time"), (None, "missing_time")])
def test_check_rejects_unusable_run_time(value: float | None, rule: str) -> None:
    ops = _good_ops().with_columns(pl.when(pl.col("PROC_SEQ") == 10).then(pl.lit(value, pl.Float64)).otherwise(pl.col("RUN_TIME")).alias("RUN_TIME"))

    assert _rules(check_operations(ops)) == [(0, rule, "RUN_TIME")]


def test_check_rejects_unknown_unit_and_flag() -> None:
    ops = _good_ops().with_columns(pl.lit("DAY").alias("TIME_UNIT"), pl.Series("INSIDE_FLG", ["사내", "X"]))

    rules = _rules(check_operations(ops))

    assert (0, "unknown_time_unit", "TIME_UNIT") in rules
    assert (1, "unknown_time_unit", "TIME_UNIT") in rules
    assert (1, "unknown_flag", "INSIDE_FLG") in rules
    assert not any(r[0] == 0 and r[1] == "unknown_flag" for r in rules)


def test_check_rejects_duplicate_and_bad_proc_seq() -> None:
    ops = pl.concat([_good_ops(), _good_ops().head(1), _good_ops().head(1).with_columns(pl.lit(None, pl.Int64).alias("PROC_SEQ"))])
    rules = _rules(check_operations(ops))
    assert rules == [(0, "duplicate_proc_seq", "PROC_SEQ"), (2, "duplicate_proc_seq", "PROC_SEQ"), (3, "missing_proc_seq", "PROC_SEQ")]

    fractional = _good_ops().with_columns(pl.Series("PROC_SEQ", [10.5, -20.0]))
    assert _rules(check_operations(fractional)) == [(0, "invalid_proc_seq", "PROC_SEQ"), (1, "invalid_proc_seq", "PROC_SEQ")]


def test_check_rejects_zero_quantity_and_absurd_time() -> None:
    ops = _good_ops().with_columns(pl.Series("RUN_TIME_QTY", [0.0, 10.0]), pl.Series("WAIT_TIME", [None, 200.0]))

    assert _rules(check_operations(ops)) == [(0, "invalid_run_time_qty", "RUN_TIME_QTY"), (1, "absurd_time", "WAIT_TIME")]


def test_check_reports_empty_routing() -> None:
    problems = check_operations(export.empty_operations())
    assert problems["rule"].to_list() == ["empty_routing"]
    assert problems["row"].to_list() == [None]


@pytest.mark.parametrize("value", [
    "=cmd|' /C calc'!A0", "=HYPERLINK(\"http://x\",\"y\")", "@SUM(A1)", "+2+3", "-2+3", "-A100",
    "\tG10", "\r=1+1", "  =1+1", "＝1+1",
])
def test_check_rejects_formula_text(value: str) -> None:
    ops = _good_ops().with_columns(pl.Series("JOB_NM", [value, "검사"]))

    problems = check_operations(ops)

    assert _rules(problems) == [(0, "formula_text", "JOB_NM")]
    assert "formula" in problems["reason"][0]


@pytest.mark.parametrize("value", ["-5", "-12.5", "-.5", "-", "G-10", "연삭 = 2차", "SEAL+"])
def test_check_accepts_text_that_is_no_formula(value: str) -> None:
    ops = _good_ops().with_columns(pl.Series("BP_CD", [value, None]))

    assert check_operations(ops).height == 0


def test_files_reject_formula_in_item_cd() -> None:
    batch = build_export([BasketRouting("A1", "01", _good_ops()), BasketRouting("@A2", "01", _good_ops())])

    assert not batch.ok
    assert sorted(set(_rules(batch.problems))) == [(2, "formula_text", "ITEM_CD"), (3, "formula_text", "ITEM_CD")]
    for write in (export.to_csv, export.to_xlsx):
        with pytest.raises(ExportError) as raised:
            write(batch)
        assert {r["rule"] for r in raised.value.rows} == {"formula_text"}


def test_check_rejects_control_characters_in_codes() -> None:
    """A control character inside a code is rejected and shown as \\xNN, while one at either end is trimmed white space."""
    ops = _good_ops().with_columns(
        pl.Series("JOB_CD", ["F61\x0b1", "Q30\n"]),
        pl.Series("RES_CD", ["CNC\x01-01", "INS\x7f"]),
        pl.Series("WC_CD", ["131\x85010", None]),
        pl.Series("BP_CD", [None, "BP\x9f07"]),
        pl.Series("JOB_NM", ["연\x01삭", "검사"]),
    )

    problems = check_operations(ops)

    assert _rules(problems) == [
        (0, "control_character", "JOB_CD"), (0, "control_character", "RES_CD"), (0, "control_character", "WC_CD"),
        (1, "control_character", "RES_CD"), (1, "control_character", "BP_CD"),
    ]
    assert problems["value"].to_list() == ["F61\\x0b1", "CNC\\x01-01", "131\\x85010", "INS\\x7f", "BP\\x9f07"]
    assert "control character" in problems["reason"][0]


def test_files_reject_control_characters_in_item_cd() -> None:
    """The xlsx file would drop the character and the CSV file keep it, so no file is written."""
    batch = build_export([BasketRouting("000\x07123", "0\x001", _good_ops()), BasketRouting("A2", "01", _good_ops())])

    assert not batch.ok
    assert sorted(set(_rules(batch.problems))) == [
        (0, "control_character", "ITEM_CD"), (0, "control_character", "ROUT_NO"),
        (1, "control_character", "ITEM_CD"), (1, "control_character", "ROUT_NO"),
    ]
    assert batch.problems["value"].to_list()[:2] == ["000\\x07123", "0\\x001"]
    for write in (export.to_csv, export.to_xlsx):
        with pytest.raises(ExportError) as raised:
            write(batch)
        assert {r["rule"] for r in raised.value.rows} == {"control_character"}


def test_every_export_rule_has_locale_text() -> None:
    from routing_core.i18n import has_key

    for rule in export.RULES:
        assert has_key(f"editor.rule.{rule}", "ko"), rule
        assert has_key(f"editor.rule.{rule}", "en"), rule


def test_renumber_sorts_then_numbers_in_tens() -> None:
    ops = _good_ops().with_columns(pl.Series("PROC_SEQ", [25, 5]))
    renumbered = export.renumber_operations(ops)
    assert renumbered["PROC_SEQ"].to_list() == [10, 20]
    assert renumbered["JOB_CD"].to_list() == ["Q30", "G10"]


def test_sort_puts_missing_proc_seq_last() -> None:
    ops = _good_ops().with_columns(pl.Series("PROC_SEQ", [None, 5], dtype=pl.Int64))
    assert export.sort_operations(ops)["JOB_CD"].to_list() == ["Q30", "G10"]


# --- basket ------------------------------------------------------------------------------


def test_basket_replaces_same_item_in_place() -> None:
    basket = Basket()
    assert basket.add(BasketRouting("A1", "01", _good_ops())) is False
    assert basket.add(BasketRouting("B1", "01", _good_ops())) is False
    assert basket.add(BasketRouting(" A1 ", "02", _good_ops().head(1))) is True

    assert [r.item_cd for r in basket.routings()] == ["A1", "B1"]
    assert basket.get("A1").rout_no == "02"
    assert basket.get("A1").operations.height == 1
    assert len(basket) == 2
    assert basket.remove("B1") is True
    assert basket.remove("B1") is False


def test_basket_rejects_empty_item_code() -> None:
    with pytest.raises(DataError):
        Basket().add(BasketRouting(" ", "01", _good_ops()))


# --- export rows ---------------------------------------------------------------------------


def test_build_export_converts_to_erp_rows() -> None:
    routing = BasketRouting(" Ａ-001 ", "01", _good_ops())
    batch = build_export([routing], valid_from=date(2026, 3, 1))

    assert batch.ok
    assert batch.rows.columns == ERP_EXPORT_COLUMNS
    first, second = batch.rows.to_dicts()
    assert first["ITEM_CD"] == "A-001"  # NFKC and trimmed
    assert second["TIME_UNIT"] == "M"
    assert second["SETUP_TIME"] == pytest.approx(30.0)  # 0.5 h
    assert second["RUN_TIME"] == pytest.approx(6.0)  # 0.1 h for 10 pieces
    assert second["RUN_TIME_QTY"] == pytest.approx(10.0)
    assert second["QUEUE_TIME"] == 0.0
    assert second["INSIDE_FLG"] == "N"
    assert first["VALID_FROM_DT"] == date(2026, 3, 1)
    assert first["VALID_TO_DT"] == date(2999, 12, 31)
    assert batch.n_routings == 1


def test_build_export_keeps_basket_order_and_sorts_operations() -> None:
    reversed_ops = _good_ops().reverse()
    batch = build_export([BasketRouting("Z9", "01", reversed_ops), BasketRouting("A1", "01", _good_ops())])
    assert batch.rows.select("ITEM_CD", "PROC_SEQ").rows() == [("Z9", 10), ("Z9", 20), ("A1", 10), ("A1", 20)]
    assert batch.n_routings == 2


def test_build_export_reports_problems_per_item() -> None:
    bad = _good_ops().with_columns(pl.Series("SETUP_TIME", [-1.0, 0.0]))
    batch = build_export([BasketRouting("A1", "01", _good_ops()), BasketRouting("B1", "01", bad),
                          BasketRouting("C1", "01", export.empty_operations())])

    assert not batch.ok
    assert batch.problems.select("ITEM_CD", "rule").rows() == [("B1", "negative_time"), ("C1", "empty_routing")]
    with pytest.raises(ExportError) as raised:
        export.to_xlsx(batch)
    assert len(raised.value.rows) == 2


def test_problem_rows_match_export_rows() -> None:
    reversed_bad = _good_ops().with_columns(pl.Series("SETUP_TIME", [-1.0, 0.0])).reverse()
    batch = build_export([BasketRouting("A1", "01", _good_ops()), BasketRouting("B1", "01", reversed_bad)])

    (problem,) = batch.problems.to_dicts()
    assert problem["row"] == 2
    assert batch.rows.row(problem["row"], named=True)["PROC_SEQ"] == problem["PROC_SEQ"] == 10
    assert batch.rows.row(problem["row"], named=True)["ITEM_CD"] == "B1"


def test_empty_basket_exports_nothing() -> None:
    batch = build_export([])
    assert batch.rows.height == 0
    for write in (export.to_xlsx, export.to_csv):
        with pytest.raises(ExportError, match="no routing data to export"):
            write(batch)


def test_xlsx_removes_and_counts_control_characters() -> None:
    # Trailing control characters are whitespace and trimmed by build_export; inner ones reach the file.
    ops = _good_ops().with_columns(pl.Series("JOB_NM", ["연\x01삭\x02", "검\x0b사\x0b"]))
    batch = build_export([BasketRouting("A1", "01", ops)])
    assert export.count_control_characters(batch.rows) == 3

    xlsx = export.to_xlsx(batch)

    assert xlsx.removed_characters == 3
    back = pl.read_excel(io.BytesIO(xlsx.data), engine="calamine", infer_schema_length=0)
    assert back["JOB_NM"].to_list() == ["연삭", "검사"]


def test_csv_cp949_refuses_unencodable_characters() -> None:
    ops = _good_ops().with_columns(pl.Series("JOB_NM", ["연삭 😀", "café"]))
    batch = build_export([BasketRouting("A1", "01", ops)])

    bad = export.unencodable_characters(batch.rows, "cp949")
    assert bad.select("row", "column", "characters").rows() == [(0, "JOB_NM", "😀"), (1, "JOB_NM", "é")]
    with pytest.raises(ExportError) as raised:
        export.to_csv(batch, "cp949")
    assert len(raised.value.rows) == 2
    assert export.to_csv(batch, "utf-8-sig").data.startswith(b"\xef\xbb\xbf")


def test_csv_utf8_has_bom_and_equals_preview() -> None:
    batch = build_export([BasketRouting("A1", "01", _good_ops())])
    data = export.to_csv(batch, "utf-8-sig").data
    back = pl.read_csv(data[3:], schema=batch.rows.schema)
    assert_frame_equal(back, batch.rows)


def test_free_text_kept_as_typed_codes_normalised() -> None:
    name = "씰 ½인치 ①공정 ㈜대한 ㎜"
    ops = _good_ops().with_columns(pl.Series("JOB_NM", [f"  {name} ", "검사"]), pl.Series("RES_CD", ["ＣＮＣ－０１", "INS-WC1"]))

    batch = build_export([BasketRouting("Ａ1", "０１", ops)])

    assert batch.ok
    first = batch.rows.row(0, named=True)
    assert first["JOB_NM"] == name
    assert (first["ITEM_CD"], first["ROUT_NO"], first["RES_CD"]) == ("A1", "01", "CNC-01")
    assert name.encode("cp949") in export.to_csv(batch, "cp949").data


def test_text_over_xlsx_cell_limit_rejected() -> None:
    limit = export.XLSX_MAX_CELL_CHARACTERS
    too_long = _good_ops().with_columns(pl.Series("JOB_NM", ["가" * (limit + 1), "가" * limit]))

    batch = build_export([BasketRouting("A1", "01", too_long)])

    assert _rules(batch.problems) == [(0, "text_too_long", "JOB_NM")]
    for write in (export.to_xlsx, export.to_csv):
        with pytest.raises(ExportError) as raised:
            write(batch)
        assert [(r["row"], r["rule"]) for r in raised.value.rows] == [(0, "text_too_long")]


def test_xlsx_holds_text_at_cell_limit() -> None:
    limit = export.XLSX_MAX_CELL_CHARACTERS
    batch = build_export([BasketRouting("A1", "01", _good_ops().with_columns(pl.Series("JOB_NM", ["가" * limit, "검사"])))])

    back = pl.read_excel(io.BytesIO(export.to_xlsx(batch).data), engine="calamine", infer_schema_length=0)

    assert back["JOB_NM"].str.len_chars().to_list() == [limit, 2]


def test_codes_over_max_length_rejected() -> None:
    limit = export.MAX_CODE_LENGTH
    ops = _good_ops().with_columns(pl.Series("JOB_CD", ["G" * (limit + 1), "Q" * limit]))
    assert _rules(check_operations(ops)) == [(0, "code_too_long", "JOB_CD")]

    batch = build_export([BasketRouting("C" * 40_000, "01", _good_ops()), BasketRouting("B" * limit, "R" * (limit + 1), _good_ops())])

    assert _rules(batch.problems) == [
        (0, "code_too_long", "ITEM_CD"), (1, "code_too_long", "ITEM_CD"),
        (2, "code_too_long", "ROUT_NO"), (3, "code_too_long", "ROUT_NO"),
    ]
    assert len(batch.problems["value"][0]) == 60
    with pytest.raises(ExportError):
        export.to_xlsx(batch)


# --- round trips through the file source ------------------------------------------------------


ROUND_TRIP_ITEMS = {
    "000123": "씰 페이스, \"SiC\" 000123",
    "H10001-GS": "메카니컬 씰\n카트리지",
}


def _round_trip_batch() -> export.ExportBatch:
    first = _good_ops()
    second = _ops([
        {"PROC_SEQ": 10, "JOB_CD": "F61-1", "JOB_NM": "조립, 1차 \"가조립\"", "RES_CD": "ASY-WC1A", "WC_CD": "151211",
         "INSIDE_FLG": "사내", "TIME_UNIT": "S", "SETUP_TIME": 90.0, "RUN_TIME": 45.0, "MILESTONE_FLG": "Y"},
        {"PROC_SEQ": 20, "JOB_CD": "Q30-2", "JOB_NM": "최종 검사\n(외관)", "RES_CD": "INS-WC2", "INSIDE_FLG": "외주",
         "SETUP_TIME": 0.0, "RUN_TIME": 16.0, "BP_CD": "협력사-1", "INSP_FLG": "Y"},
    ])
    routings = [BasketRouting(code, "01", ops) for code, ops in zip(ROUND_TRIP_ITEMS, (first, second))]
    batch = build_export(routings, valid_from=date(2026, 1, 15))
    assert batch.ok
    return batch


def _read_back(folder: Path) -> pl.DataFrame:
    """Read a folder through the file source and validation; return its routings in export columns."""
    items = pl.DataFrame({"ITEM_CD": list(ROUND_TRIP_ITEMS), "ITEM_NM": list(ROUND_TRIP_ITEMS.values())})
    items.write_csv(folder / "BI_ITEM_INFO_VIEW.csv")
    raw, _ = read_folder(folder)
    views, report = validate_views(raw, reference_date=date(2026, 6, 1))
    assert report.rows_left_out == 0
    assert views.active_routings.height == views.routings.height
    return views.routings.rename({"INSIDE_FLAG": "INSIDE_FLG"}).select(ERP_EXPORT_COLUMNS)


def test_round_trip_xlsx(tmp_path: Path) -> None:
    batch = _round_trip_batch()
    (tmp_path / "BI_ROUTING_VIEW.xlsx").write_bytes(export.to_xlsx(batch).data)
    assert_frame_equal(_read_back(tmp_path), batch.rows)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp949"])
def test_round_trip_csv(tmp_path: Path, encoding: str) -> None:
    batch = _round_trip_batch()
    data = export.to_csv(batch, encoding).data
    (tmp_path / "BI_ROUTING_VIEW.csv").write_bytes(data)

    assert data.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    assert "최종 검사".encode("cp949" if encoding == "cp949" else "utf-8") in data
    assert_frame_equal(_read_back(tmp_path), batch.rows)
    _, encodings = read_folder(tmp_path)
    assert encodings["BI_ROUTING_VIEW.csv"] == encoding


# --- ERP staging table through the SQLite ODBC driver ---------------------------------------------


@pytest.fixture
def staging(tmp_path: Path):
    """Settings that point at an empty SQLite staging table, and a function that counts its rows."""
    require_driver(SQLITE_DRIVER)
    pyodbc = require_pyodbc()
    connection_string = sqlite_connection_string(tmp_path / "staging.db")
    connection = pyodbc.connect(connection_string, autocommit=True)
    connection.cursor().execute(create_staging_table_sql("sqlite", "ROUTING_STAGING"))
    connection.close()
    settings = load_settings(data_source="files", odbc_connection_string=connection_string, staging_table="ROUTING_STAGING")

    def rows() -> list[tuple]:
        with pyodbc.connect(connection_string) as read:
            return [tuple(r) for r in read.cursor().execute(
                'SELECT "ITEM_CD", "PROC_SEQ", "JOB_NM", "RUN_TIME", "VALID_TO_DT" FROM ROUTING_STAGING ORDER BY 1, 2'
            ).fetchall()]

    return settings, rows


def test_erp_write_states_rows_and_routings(staging) -> None:
    settings, rows = staging
    batch = _round_trip_batch()
    assert export.erp_export_available(settings)

    checked = export.write_to_erp(batch, settings, dry_run=True)
    assert (checked.rows_written, checked.rows_checked) == (0, 4)
    assert rows() == []

    result = export.write_to_erp(batch, settings)

    assert (result.rows_written, result.routings_written) == (4, 2)
    written = rows()
    assert len(written) == 4
    assert written[0][:3] == ("000123", 10, "연삭, \"정밀\"\n2차")


def test_erp_write_rejects_whole_batch(staging) -> None:
    settings, rows = staging
    too_long = _good_ops().with_columns(pl.Series("JOB_CD", ["G10", "Q" * 40]))
    batch = build_export([BasketRouting("A1", "01", _good_ops()), BasketRouting("B1", "01", too_long)])

    with pytest.raises(ExportError) as raised:
        export.write_to_erp(batch, settings)

    assert rows() == []
    assert [(r["ITEM_CD"], r["column"], r["rule"]) for r in raised.value.rows] == [("B1", "JOB_CD", "too_long")]


def test_erp_write_refuses_empty_and_invalid(staging) -> None:
    settings, rows = staging
    with pytest.raises(ExportError, match="no routing data"):
        export.write_to_erp(build_export([]), settings)
    bad = _good_ops().with_columns(pl.Series("RUN_TIME", [-1.0, 1.0]))
    with pytest.raises(ExportError) as raised:
        export.write_to_erp(build_export([BasketRouting("A1", "01", bad)]), settings)
    assert raised.value.rows[0]["rule"] == "negative_time"
    assert rows() == []


def test_erp_write_result_lists_columns(staging) -> None:
    settings, _ = staging

    result = export.write_to_erp(_round_trip_batch(), settings, dry_run=True)

    assert result.columns == tuple(ERP_EXPORT_COLUMNS)


def _sqlite_table(settings, ddl: str) -> None:
    """Replace the staging table of ``settings`` with the table that ``ddl`` creates."""
    pyodbc = require_pyodbc()
    with pyodbc.connect(settings.odbc_connection_string.get_secret_value(), autocommit=True) as connection:
        connection.cursor().execute("DROP TABLE ROUTING_STAGING")
        connection.cursor().execute(ddl)


@pytest.mark.parametrize("dry_run", [True, False])
def test_erp_write_rejects_table_missing_export_columns(staging, dry_run: bool) -> None:
    settings, _ = staging
    dropped = ("RES_CD", "SETUP_TIME", "VALID_TO_DT")
    lines = create_staging_table_sql("sqlite").splitlines()
    _sqlite_table(settings, "\n".join(line for line in lines if not any(f'"{c}" ' in line for c in dropped)))

    with pytest.raises(ExportError, match="has no column RES_CD, SETUP_TIME, VALID_TO_DT") as raised:
        export.write_to_erp(_round_trip_batch(), settings, dry_run=dry_run)

    assert [(r["column"], r["rule"]) for r in raised.value.rows] == [
        ("RES_CD", "missing_column"), ("SETUP_TIME", "missing_column"), ("VALID_TO_DT", "missing_column"),
    ]
    pyodbc = require_pyodbc()
    with pyodbc.connect(settings.odbc_connection_string.get_secret_value()) as read:
        columns = [d[0] for d in read.cursor().execute("SELECT * FROM ROUTING_STAGING").description]
        assert columns == [c for c in ERP_EXPORT_COLUMNS if c not in dropped]
        assert read.cursor().execute("SELECT COUNT(*) FROM ROUTING_STAGING").fetchone()[0] == 0


def test_erp_write_rejects_code_into_number_column(staging) -> None:
    settings, _ = staging
    ddl = create_staging_table_sql("sqlite").replace('"ITEM_CD" varchar(50)', '"ITEM_CD" integer')
    _sqlite_table(settings, ddl)
    batch = build_export([BasketRouting("123", "01", _good_ops()), BasketRouting("000123", "01", _good_ops())])

    with pytest.raises(ExportError, match="code '000123' would be stored as the number 123") as raised:
        export.write_to_erp(batch, settings, dry_run=True)

    assert [(r["row"], r["column"], r["rule"], r["value"]) for r in raised.value.rows] == [
        (2, "ITEM_CD", "code_changed", "000123"), (3, "ITEM_CD", "code_changed", "000123"),
    ]
    plain = build_export([BasketRouting("123", "01", _good_ops())])
    assert export.write_to_erp(plain, settings).rows_written == 2


def test_erp_write_rejects_rounding_time_column(staging) -> None:
    """A staging column with one decimal would store RUN_TIME 0.04 as 0.0, so the export stops before writing."""
    settings, rows = staging
    ddl = create_staging_table_sql("sqlite").replace('"RUN_TIME" decimal(18,4)', '"RUN_TIME" decimal(10,1)')
    _sqlite_table(settings, ddl)
    ops = _good_ops().with_columns(pl.Series("RUN_TIME", [0.04, 0.5]), pl.Series("TIME_UNIT", ["M", "M"]))
    batch = build_export([BasketRouting("A1", "01", ops)])

    for dry_run in (True, False):
        with pytest.raises(ExportError, match="0.04 has more decimals than decimal") as raised:
            export.write_to_erp(batch, settings, dry_run=dry_run)
        assert [(r["row"], r["column"], r["rule"], r["value"]) for r in raised.value.rows] == [
            (0, "RUN_TIME", "too_many_decimals", "0.04 → 0.0"),
        ]
    assert rows() == []


def test_erp_export_not_offered_without_odbc() -> None:
    assert not export.erp_export_available(load_settings(data_source="files", odbc_connection_string=None))
    assert export.erp_export_available(load_settings(data_source="odbc"))


# --- predictions to basket routings ------------------------------------------------------------------


def _frame(view: str, rows: list[dict]) -> pl.DataFrame:
    schema = clean_schema(view)
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    items = _frame(ITEM_VIEW, [
        {"ITEM_CD": f"{kind}{i}", "ITEM_NM": f"{name} {i}", "PART_TYPE": kind, "ITEM_MATERIAL": material, "OUTDIAMETER": 50.0 + i}
        for kind, name, material in (("FACE", "씰 페이스", "SiC"), ("METAL", "슬리브", "SUS316"))
        for i in range(1, 5)
    ])
    routings = _frame(ROUTING_VIEW, [
        {"ITEM_CD": f"{kind}{i}", "ROUT_NO": "01", "PROC_SEQ": seq, "JOB_CD": job, "JOB_NM": f"작업 {job}", "RES_CD": f"RES-{job}",
         "INSIDE_FLAG": "Y", "TIME_UNIT": "M", "SETUP_TIME": 10.0 * seq, "RUN_TIME": 1.0 + i, "RUN_TIME_QTY": 1.0,
         "QUEUE_TIME": 5.0, "WAIT_TIME": 50.0, "MOVE_TIME": 10.0, "MAJOR_FLG": "Y",
         "VALID_FROM_DT": date(2001, 1, 1), "VALID_TO_DT": date(2999, 12, 31)}
        for kind, jobs in (("FACE", ("G10", "L20", "Q30")), ("METAL", ("T10", "M20")))
        for i in range(1, 5)
        for seq, job in zip((10, 20, 30), jobs)
    ])
    views = Views(items=items, routings=routings, active_routings=routings, work_orders=_frame(WORK_ORDER_VIEW, []))
    settings = load_settings(features=FEATURES, model_dir=tmp_path_factory.mktemp("models"))
    return Predictor(build_bundle(views, settings))


def _options() -> PredictionOptions:
    return PredictionOptions(top_k=5, max_candidates=3, lot_size=1.0, similarity_floor=-1.0, min_actual_orders=3)


def test_operations_from_result_is_editor_frame(predictor: Predictor) -> None:
    result = predictor.predict_items(["FACE1"], _options())
    top = result.candidates.sort("rank").row(0, named=True)

    ops = export.operations_from_result(result, 0, top["candidate_id"])

    assert ops.schema == export.EDITOR_SCHEMA
    assert ops["JOB_CD"].to_list() == ["G10", "L20", "Q30"]
    assert ops["PROC_SEQ"].to_list() == [10, 20, 30]
    assert ops["TIME_UNIT"].unique().to_list() == ["M"]
    assert ops["SETUP_TIME"].to_list() == pytest.approx([100.0, 200.0, 300.0])
    assert check_operations(ops).height == 0
    with pytest.raises(DataError):
        export.operations_from_result(result, 0, "R-missing")


def test_predict_in_chunks_matches_one_call(predictor: Predictor) -> None:
    new_items = pl.DataFrame({
        "ITEM_CD": ["N1", "N2", "N3", "N4", "N5"],
        "PART_TYPE": ["FACE", "METAL", "FACE", "METAL", None],
        "ITEM_MATERIAL": ["SiC", "SUS316", "SiC", None, None],
        "OUTDIAMETER": [51.0, 52.0, None, 53.0, None],
    })
    seen: list[tuple[int, int]] = []

    chunked = export.predict_in_chunks(predictor, new_items, _options(), chunk_size=2, progress=lambda d, t: seen.append((d, t)))
    whole = predictor.predict_attributes(new_items, _options())

    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert_frame_equal(export.top_candidates(chunked), export.top_candidates(whole))
    table = export.top_candidates(chunked)
    assert table["item_cd"].to_list() == ["N1", "N2", "N3", "N4", "N5"]
    assert table["n_operations"].to_list()[:2] == [3, 2]
    expected_days = chunked.operations.group_by("query", "candidate_id").agg(pl.col("mfg_lt").sum())
    best_days = table.join(expected_days, on=["query", "candidate_id"]).select("subcontract_days", "mfg_lt")
    assert best_days["subcontract_days"].to_list() == best_days["mfg_lt"].to_list()


def test_top_candidates_into_basket(predictor: Predictor) -> None:
    new_items = pl.DataFrame({"ITEM_CD": ["N1", "N2"], "PART_TYPE": ["FACE", "METAL"], "ITEM_MATERIAL": ["SiC", "SUS316"]})
    result = export.predict_in_chunks(predictor, new_items, _options())

    routings, skipped = export.basket_routings_from_result(result, [0, 1], "02", {"N1": "신규 1"}, "v1")

    assert skipped == []
    assert [(r.item_cd, r.rout_no, r.item_nm, r.operations.height) for r in routings] == [("N1", "02", "신규 1", 3), ("N2", "02", None, 2)]
    batch = build_export(routings)
    assert batch.ok
    assert batch.rows.height == 5


# --- item lists for batch prediction and the CLI ------------------------------------------------------


ITEM_LIST_KO = "품목코드,품목명,부품유형,재질,외경,비고\nN-001,\"씰 페이스, 신규\",FACE,SiC,51,참고\nN-002,슬리브,METAL,SUS316,52,\n,빈 코드,FACE,SiC,50,\n"


@pytest.mark.parametrize("encoding", ["cp949", "utf-8-sig", "utf-8"])
def test_read_item_list_from_uploaded_csv(encoding: str) -> None:
    items, report = read_item_list(ITEM_LIST_KO.encode(encoding), "new_items.csv")

    assert items["ITEM_CD"].to_list() == ["N-001", "N-002"]
    assert items["ITEM_NM"].to_list() == ["씰 페이스, 신규", "슬리브"]
    assert items["OUTDIAMETER"].to_list() == [51.0, 52.0]
    assert report.encodings == {"new_items.csv": encoding}
    assert report.rejected.select("row", "rule").rows() == [(3, "missing_item_cd")]


def test_read_item_list_from_uploaded_xlsx() -> None:
    frame = pl.DataFrame({"ITEM_CD": ["000777", "N-2"], "PART_TYPE": ["FACE", "METAL"], "외경": ["51", "52.5"]})
    buffer = io.BytesIO()
    frame.write_excel(buffer)

    for name in ("items.xlsx", None):
        items, _ = read_item_list(buffer.getvalue(), name)
        assert items["ITEM_CD"].to_list() == ["000777", "N-2"]
        assert items["OUTDIAMETER"].to_list() == [51.0, 52.5]


def test_cli_predicts_item_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``predict --items-file`` reads a Korean CP949 list and prints one prediction per valid row."""
    data = tmp_path / "data"
    assert cli_main(["sample", "--items", "600", "--out", str(data)]) == 0
    items_file = tmp_path / "new_items.csv"
    items_file.write_bytes(ITEM_LIST_KO.encode("cp949"))
    capsys.readouterr()

    code = cli_main(["predict", "--data", str(data), "--models", str(tmp_path / "models"), "--items-file", str(items_file)])

    assert code == 0
    output = json.loads(capsys.readouterr().out)
    assert [entry["item_cd"] for entry in output] == ["N-001", "N-002"]
    assert all(entry["candidates"] for entry in output)


def test_registered_routings_lists_items_in_use():
    operations = pl.DataFrame({"PROC_SEQ": [10]})
    basket = [BasketRouting("A1", "01", operations), BasketRouting("NEW-9", "01", operations)]
    active = pl.DataFrame({"ITEM_CD": ["A1", "A1", "B2"], "ROUT_NO": ["B#1", "B#1", "01"], "PROC_SEQ": [10, 20, 10]})
    found = registered_routings(basket, active)
    assert found.rows() == [("A1", "01", "B#1", 2)]
