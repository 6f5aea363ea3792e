"""Tests of routing_core.validation: every rule on small real Polars frames."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime

import polars as pl
import pytest

from routing_core import schema
from routing_core.errors import DataError
from routing_core.validation import (
    MAX_STORED_PER_RULE,
    RULES,
    SOURCE_PROBLEM_COLUMN,
    RawViews,
    data_fingerprint,
    format_column_list,
    validate_items,
    validate_views,
)

REFERENCE = date(2026, 1, 1)


def _items(codes: list[str], **columns: list[str | None]) -> pl.DataFrame:
    """Build an item master of text columns."""
    data = {"ITEM_CD": codes, "PART_TYPE": ["RING"] * len(codes), **columns}
    return pl.DataFrame(data, schema={c: pl.String for c in data})


def _routing_rows(rows: list[dict]) -> pl.DataFrame:
    """Build a routing frame of text columns from row dicts (missing keys are null)."""
    columns = sorted({k for row in rows for k in row}, key=lambda c: (c not in ("ITEM_CD", "ROUT_NO", "PROC_SEQ"), c))
    return pl.DataFrame(
        {c: [row.get(c) for row in rows] for c in columns},
        schema={c: pl.String for c in columns},
    )


def _op(item: str, seq: str, job: str = "F61-1", **extra: str | None) -> dict:
    row = {"ITEM_CD": item, "ROUT_NO": "R1", "PROC_SEQ": seq, "JOB_CD": job,
           "TIME_UNIT": "M", "SETUP_TIME": "10", "RUN_TIME": "5", "MAJOR_FLG": "Y"}
    row.update(extra)
    return row


def _validate(items: pl.DataFrame, routings: pl.DataFrame, work_orders: pl.DataFrame | None = None):
    raw = RawViews(items=items, routings=routings, work_orders=work_orders if work_orders is not None else pl.DataFrame())
    return validate_views(raw, reference_date=REFERENCE)


def _rejected(report, rule: str) -> pl.DataFrame:
    return report.rejected.filter(pl.col("rule") == rule)


# --- headers ---------------------------------------------------------------------------


def test_aliases_erp_and_korean_headers() -> None:
    routings = pl.DataFrame({
        "품목코드": ["A1", "A1"],
        "공정순서": ["10", "20"],
        "작업코드": ["F61-1", "Q30-1"],
        "자원코드": ["CNC-01", "INS-WC2"],
        "INSIDE_FLG": ["사내", "외주"],
        " time_unit ": ["M", "M"],
        "ERP_ONLY_COLUMN": ["x", "y"],
    })
    views, report = _validate(_items(["A1"]), routings)

    active = views.active_routings
    assert active["PROC_SEQ"].to_list() == [10, 20]
    assert active["JOB_CD"].to_list() == ["F61-1", "Q30-1"]
    assert active["RES_CD"].to_list() == ["CNC-01", "INS-WC2"]
    assert active["INSIDE_FLAG"].to_list() == ["Y", "N"]
    assert "ERP_ONLY_COLUMN" not in active.columns
    assert any("INSIDE_FLG -> INSIDE_FLAG" in note for note in report.notes)
    assert any("ERP_ONLY_COLUMN" in note for note in report.notes)


def test_missing_optional_columns_added_typed() -> None:
    views, report = _validate(_items(["A1"]), _routing_rows([_op("A1", "10")]))

    assert views.items.schema == schema.clean_schema(schema.ITEM_VIEW)
    assert views.items["OUTDIAMETER"].dtype == pl.Float64
    assert "OUTDIAMETER" in report.missing_columns[schema.ITEM_VIEW]
    assert "RES_CD" in report.missing_columns[schema.ROUTING_VIEW]


@pytest.mark.parametrize(
    ("view", "column"),
    [("items", "ITEM_CD"), ("routings", "JOB_CD"), ("routings", "PROC_SEQ"), ("work_orders", "PROC_SEQ")],
)
def test_missing_required_column_raises(view: str, column: str) -> None:
    frames = {
        "items": _items(["A1"]),
        "routings": _routing_rows([_op("A1", "10")]),
        "work_orders": pl.DataFrame({"ITEM_CD": ["A1"], "PROC_SEQ": ["10"], "ORDER_QTY": ["5"]}),
    }
    frames[view] = frames[view].drop(column)

    with pytest.raises(DataError) as caught:
        validate_views(RawViews(**frames), reference_date=REFERENCE)

    view_name = {"items": schema.ITEM_VIEW, "routings": schema.ROUTING_VIEW, "work_orders": schema.WORK_ORDER_VIEW}[view]
    assert view_name in str(caught.value)
    assert column in str(caught.value)
    assert caught.value.rows[0]["column"] == column


# --- text values -----------------------------------------------------------------------


@pytest.mark.parametrize("marker", sorted(schema.NULL_MARKERS))
def test_null_markers_become_null(marker: str) -> None:
    items = _items(["A1"], ITEM_MATERIAL=[f"  {marker} "], OUTDIAMETER=[marker])
    views, report = _validate(items, _routing_rows([_op("A1", "10", WC_CD=marker)]))

    assert views.items["ITEM_MATERIAL"].to_list() == [None]
    assert views.items["OUTDIAMETER"].to_list() == [None]
    assert views.active_routings["WC_CD"].to_list() == [None]
    assert "number_set_null" not in report.rule_counts


def test_codes_trimmed_nfkc_zeros_kept() -> None:
    items = _items(["000123", " ＡＢ－１ ", "10.0"])
    routings = _routing_rows([
        _op("000123 ", "10", job="Ｆ６１－１", RES_CD="ＣＮＣ－０１"),
        _op("AB-1", "10"),
        _op("10.0", "10"),
    ])
    views, _ = _validate(items, routings)

    assert views.items["ITEM_CD"].to_list() == ["000123", "10.0", "AB-1"]
    first = views.active_routings.filter(pl.col("ITEM_CD") == "000123")
    assert first["JOB_CD"].to_list() == ["F61-1"]
    assert first["RES_CD"].to_list() == ["CNC-01"]
    assert sorted(views.active_routings["ITEM_CD"].to_list()) == ["000123", "10.0", "AB-1"]


def test_korean_text_kept() -> None:
    items = _items(["A1"], ITEM_NM=["  카본 링  "])
    views, _ = _validate(items, _routing_rows([_op("A1", "10", JOB_NM="연삭")]))

    assert views.items["ITEM_NM"].to_list() == ["카본 링"]
    assert views.active_routings["JOB_NM"].to_list() == ["연삭"]


# --- numbers ---------------------------------------------------------------------------


def test_times_from_text_become_float() -> None:
    routings = _routing_rows([
        _op("A1", "10", SETUP_TIME="1,234.5", RUN_TIME=" 12 ", QUEUE_TIME="0.5", WAIT_TIME="+3", MOVE_TIME="1e1"),
    ])
    views, _ = _validate(_items(["A1"]), routings)

    row = views.active_routings.row(0, named=True)
    assert views.active_routings.schema["SETUP_TIME"] == pl.Float64
    assert row["SETUP_TIME"] == 1234.5
    assert row["RUN_TIME"] == 12.0
    assert row["QUEUE_TIME"] == 0.5
    assert row["WAIT_TIME"] == 3.0
    assert row["MOVE_TIME"] == 10.0


def test_typed_input_columns_accepted() -> None:
    items = pl.DataFrame({"ITEM_CD": ["A1"], "OUTDIAMETER": [12], "STANDARD_YN": [True]})
    routings = pl.DataFrame({
        "ITEM_CD": ["A1", "A1"],
        "ROUT_NO": ["R1", "R1"],
        "PROC_SEQ": [20, 10],
        "JOB_CD": ["F40-1", "F61-1"],
        "SETUP_TIME": [1.5, float("nan")],
        "RUN_TIME": [2, 3],
        "INSP_FLG": [1, 0],
        "VALID_FROM_DT": [date(2001, 1, 1), date(2001, 1, 1)],
        "VALID_TO_DT": [datetime(2999, 12, 31), datetime(2999, 12, 31)],
    })
    views, report = _validate(items, routings)

    assert views.items["OUTDIAMETER"].to_list() == [12.0]
    assert views.items["STANDARD_YN"].to_list() == ["Y"]
    active = views.active_routings
    assert active["PROC_SEQ"].to_list() == [10, 20]
    assert active["SETUP_TIME"].to_list() == [None, 1.5]
    assert active["RUN_TIME"].to_list() == [3.0, 2.0]
    assert active["INSP_FLG"].to_list() == ["N", "Y"]
    assert active["VALID_TO_DT"].to_list() == [date(2999, 12, 31)] * 2
    assert report.rows_left_out == 0


def test_required_number_text_rejects_row() -> None:
    routings = _routing_rows([_op("A1", "10"), _op("A1", "20", RUN_TIME="abc"), _op("A1", "30", SETUP_TIME="1,5")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.active_routings["PROC_SEQ"].to_list() == [10]
    assert report.rule_counts["not_a_number"] == 2
    reasons = _rejected(report, "not_a_number")["reason"].to_list()
    assert "RUN_TIME 'abc' is not a number" in reasons
    assert "SETUP_TIME '1,5' is not a number" in reasons
    assert _rejected(report, "not_a_number")["row"].to_list() == [2, 3]
    assert report.rule_counts["routing_with_rejected_operations"] == 1


def test_optional_number_text_set_null() -> None:
    routings = _routing_rows([_op("A1", "10", QUEUE_TIME="abc", MFG_LT="x")])
    items = _items(["A1"], OUTDIAMETER=["12mm"])
    views, report = _validate(items, routings)

    assert views.active_routings["QUEUE_TIME"].to_list() == [None]
    assert views.active_routings["MFG_LT"].to_list() == [None]
    assert views.items["OUTDIAMETER"].to_list() == [None]
    assert report.view_rule_counts[schema.ROUTING_VIEW]["number_set_null"] == 1
    assert report.view_rule_counts[schema.ITEM_VIEW]["number_set_null"] == 1


@pytest.mark.parametrize(
    ("text", "rule"),
    [("1O", "not_a_number"), ("10.5", "not_a_number"), ("", "missing_proc_seq"), ("NULL", "missing_proc_seq")],
)
def test_bad_proc_seq_rejected(text: str, rule: str) -> None:
    routings = _routing_rows([_op("A1", "10"), _op("A1", text, job="X")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.routings["PROC_SEQ"].to_list() == [10]
    assert report.rule_counts[rule] == 1
    assert _rejected(report, rule)["row"].to_list() == [2]


def test_proc_seq_float_text_accepted() -> None:
    views, _ = _validate(_items(["A1"]), _routing_rows([_op("A1", "10.0")]))

    assert views.active_routings["PROC_SEQ"].to_list() == [10]


def test_proc_seq_numeric_order() -> None:
    routings = _routing_rows([_op("A1", "100", job="C"), _op("A1", "20", job="B"), _op("A1", "10", job="A")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.active_routings["PROC_SEQ"].to_list() == [10, 20, 100]
    assert views.active_routings["JOB_CD"].to_list() == ["A", "B", "C"]
    assert report.rule_counts["operations_out_of_order"] == 1


def test_in_order_routing_not_counted() -> None:
    routings = _routing_rows([_op("A1", "10"), _op("A1", "20", job="B")])
    _, report = _validate(_items(["A1"]), routings)

    assert "operations_out_of_order" not in report.rule_counts


@pytest.mark.parametrize("missing", ["ITEM_CD", "JOB_CD"])
def test_missing_key_rejected(missing: str) -> None:
    bad = _op("A1", "20", job="B")
    bad[missing] = "NULL"
    views, report = _validate(_items(["A1"]), _routing_rows([_op("A1", "10"), bad]))

    rule = {"ITEM_CD": "missing_item_cd", "JOB_CD": "missing_job_cd"}[missing]
    assert views.routings.height == 1
    assert report.rule_counts[rule] == 1
    assert _rejected(report, rule)["reason"].to_list() == [f"{missing} is empty"]


# --- time units ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "factor"),
    [("S", 1 / 60), ("SEC", 1 / 60), ("sec", 1 / 60), ("초", 1 / 60),
     ("M", 1.0), ("MIN", 1.0), ("min", 1.0), ("분", 1.0),
     ("H", 60.0), ("HR", 60.0), ("hour", 60.0), ("시간", 60.0), ("시", 60.0), (" h ", 60.0)],
)
def test_time_unit_converted_to_minutes(unit: str, factor: float) -> None:
    routings = _routing_rows([_op("A1", "10", TIME_UNIT=unit, SETUP_TIME="6", RUN_TIME="3",
                                  QUEUE_TIME="1", WAIT_TIME="2", MOVE_TIME="4", MFG_LT="2")])
    views, report = _validate(_items(["A1"]), routings)

    row = views.active_routings.row(0, named=True)
    assert row["TIME_UNIT"] == "M"
    assert row["SETUP_TIME"] == pytest.approx(6 * factor)
    assert row["RUN_TIME"] == pytest.approx(3 * factor)
    assert row["QUEUE_TIME"] == pytest.approx(1 * factor)
    assert row["WAIT_TIME"] == pytest.approx(2 * factor)
    assert row["MOVE_TIME"] == pytest.approx(4 * factor)
    assert row["MFG_LT"] == 2.0  # days, not converted
    assert report.rule_counts.get("time_unit_converted", 0) == (0 if factor == 1.0 else 1)


def test_null_time_unit_means_minutes() -> None:
    routings = _routing_rows([_op("A1", "10", TIME_UNIT="NULL", RUN_TIME="7")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.active_routings["RUN_TIME"].to_list() == [7.0]
    assert views.active_routings["TIME_UNIT"].to_list() == ["M"]
    assert report.rule_counts["time_unit_missing_assumed_minutes"] == 1


def test_unknown_time_unit_rejected() -> None:
    routings = _routing_rows([_op("A1", "10"), _op("A1", "20", TIME_UNIT="DAY")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.routings["PROC_SEQ"].to_list() == [10]
    assert report.rule_counts["unknown_time_unit"] == 1
    assert "'DAY'" in _rejected(report, "unknown_time_unit")["reason"][0]


def test_negative_and_absurd_times_rejected() -> None:
    routings = _routing_rows([
        _op("A1", "10"),
        _op("A1", "20", SETUP_TIME="-1"),
        _op("A1", "30", RUN_TIME="10001"),
        _op("A1", "40", RUN_TIME="20000", RUN_TIME_QTY="10"),  # 2,000 min per piece: kept
        _op("A1", "50", TIME_UNIT="H", SETUP_TIME="169"),  # more than 7 days
    ])
    views, report = _validate(_items(["A1"]), routings)

    assert views.routings["PROC_SEQ"].to_list() == [10, 40]
    assert report.rule_counts["negative_time"] == 1
    assert report.rule_counts["absurd_time"] == 2
    assert _rejected(report, "negative_time")["reason"].to_list() == ["SETUP_TIME -1.0 is negative"]


@pytest.mark.parametrize("qty", ["NULL", "0"])
def test_run_time_qty_defaulted(qty: str) -> None:
    views, report = _validate(_items(["A1"]), _routing_rows([_op("A1", "10", RUN_TIME_QTY=qty)]))

    assert views.active_routings["RUN_TIME_QTY"].to_list() == [1.0]
    assert report.rule_counts["run_time_qty_defaulted"] == 1


@pytest.mark.parametrize(("qty", "rule"), [("-2", "negative_run_time_qty"), ("100EA", "not_a_number")])
def test_bad_run_time_qty_rejects_row(qty: str, rule: str) -> None:
    rows = [_op("A1", "10", RUN_TIME="500", RUN_TIME_QTY=qty), _op("A1", "20")]
    views, report = _validate(_items(["A1"]), _routing_rows(rows))

    assert views.active_routings["PROC_SEQ"].to_list() == [20]
    assert _rejected(report, rule)["row"].to_list() == [1]


# --- flags -----------------------------------------------------------------------------


def test_inside_flag_spellings() -> None:
    spellings = ["Y", "N", "사내", "외주", "1", "0", "y", " 사내 ", "X"]
    routings = _routing_rows([_op("A1", str(10 * (i + 1)), INSIDE_FLG=s) for i, s in enumerate(spellings)])
    views, report = _validate(_items(["A1"]), routings)

    assert views.active_routings["INSIDE_FLAG"].to_list() == ["Y", "N", "Y", "N", "Y", "N", "Y", "Y", None]
    assert report.rule_counts["unknown_inside_flag"] == 1


def test_yes_no_flags_normalised() -> None:
    spellings = ["Y", "n", "1", "0", "1.0", "TRUE", "false", "예", "maybe"]
    routings = _routing_rows([_op("A1", str(10 * (i + 1)), INSP_FLG=s) for i, s in enumerate(spellings)])
    items = _items(["A1"], STANDARD_YN=["1"], ROTATE_CLOCKWISE=["yes?"])
    views, report = _validate(items, routings)

    assert views.active_routings["INSP_FLG"].to_list() == ["Y", "N", "Y", "N", "Y", "Y", "N", "Y", None]
    assert views.items["STANDARD_YN"].to_list() == ["Y"]
    assert views.items["ROTATE_CLOCKWISE"].to_list() == [None]
    assert report.view_rule_counts[schema.ROUTING_VIEW]["unknown_flag_value"] == 1
    assert report.view_rule_counts[schema.ITEM_VIEW]["unknown_flag_value"] == 1


# --- item geometry ---------------------------------------------------------------------


def test_inch_converted_to_mm() -> None:
    items = _items(
        ["A1", "A2", "A3", "A4", "A5"],
        OUTDIAMETER=["2", "2", "50", "3", "7"],
        INDIAMETER=["1", "1", "25", None, "5"],
        OUTTHICKNESS=["0.5", "0.5", "5", "1", "1"],
        OUTDIAMETER_UNIT=["inch", '"', "mm", "IN", "cm"],
    )
    views, report = _validate(items, _routing_rows([_op("A1", "10")]))

    items_out = views.items
    assert items_out["OUTDIAMETER"].to_list() == pytest.approx([50.8, 50.8, 50.0, 76.2, 7.0])
    assert items_out["INDIAMETER"].to_list()[:3] == pytest.approx([25.4, 25.4, 25.0])
    assert items_out["OUTTHICKNESS"].to_list()[:2] == pytest.approx([12.7, 12.7])
    assert items_out["OUTDIAMETER_UNIT"].to_list() == ["mm", "mm", "mm", "mm", "cm"]
    assert report.rule_counts["inch_converted_to_mm"] == 3
    assert report.rule_counts["unknown_length_unit"] == 1


# --- dates -----------------------------------------------------------------------------


def test_dates_parsed_from_text_forms() -> None:
    texts = ["2001-01-01 00:00:00.000", "2001-01-01", "20010101", "2001/1/5", "45123", "45123.75", "2999-12-31"]
    routings = _routing_rows([
        _op("A1", str(10 * (i + 1)), VALID_FROM_DT=text, VALID_TO_DT="2999-12-31 00:00:00.000")
        for i, text in enumerate(texts)
    ])
    views, report = _validate(_items(["A1"]), routings)

    assert views.routings["VALID_FROM_DT"].to_list() == [
        date(2001, 1, 1), date(2001, 1, 1), date(2001, 1, 1), date(2001, 1, 5),
        date(2023, 7, 16), date(2023, 7, 16), date(2999, 12, 31),
    ]
    assert views.routings["VALID_TO_DT"].to_list() == [date(2999, 12, 31)] * len(texts)
    assert "invalid_date_set_null" not in report.rule_counts


def test_excel_serial_number_date() -> None:
    work_orders = pl.DataFrame({"ITEM_CD": ["A1", "A1"], "PROC_SEQ": [10, 20], "REPORT_DT": [45123.0, 36892.0]})
    views, _ = _validate(_items(["A1"]), _routing_rows([_op("A1", "10")]), work_orders)

    assert views.work_orders["REPORT_DT"].to_list() == [date(2023, 7, 16), date(2001, 1, 1)]


def test_empty_validity_dates_defaulted() -> None:
    routings = _routing_rows([_op("A1", "10", VALID_FROM_DT="NULL", VALID_TO_DT=None)])
    views, report = _validate(_items(["A1"]), routings)

    row = views.routings.row(0, named=True)
    assert row["VALID_FROM_DT"] == date(1900, 1, 1)
    assert row["VALID_TO_DT"] == date(2999, 12, 31)
    assert report.rule_counts["validity_date_defaulted"] == 1


def test_unreadable_date_set_null_and_counted() -> None:
    work_orders = pl.DataFrame({"ITEM_CD": ["A1"], "PROC_SEQ": ["10"], "REPORT_DT": ["last tuesday"]})
    views, report = _validate(_items(["A1"]), _routing_rows([_op("A1", "10")]), work_orders)

    assert views.work_orders["REPORT_DT"].to_list() == [None]
    assert report.rule_counts["invalid_date_set_null"] == 1


# --- duplicates ------------------------------------------------------------------------


def test_exact_duplicates_removed_and_counted() -> None:
    rows = [_op("A1", "10"), _op("A1", "20", job="B"), _op("A1", "10"), _op("A1", "10 ")]
    routings = _routing_rows(rows).with_columns(pl.Series("ID", ["1", "2", "3", "4"]))  # dropped column
    items = _items(["A1", "A1"])
    views, report = _validate(items, routings)

    assert views.routings["PROC_SEQ"].to_list() == [10, 20]
    assert report.view_rule_counts[schema.ROUTING_VIEW]["exact_duplicate"] == 2
    assert report.view_rule_counts[schema.ITEM_VIEW]["exact_duplicate"] == 1
    reasons = _rejected(report, "exact_duplicate").filter(pl.col("view") == schema.ROUTING_VIEW)
    assert reasons["row"].to_list() == [3, 4]
    assert reasons["reason"].to_list() == ["exact duplicate of row 1"] * 2


def test_duplicate_item_cd_keeps_first() -> None:
    items = _items(["A1", "A2", "A1"], ITEM_MATERIAL=["SiC", "WC", "Carbon"])
    views, report = _validate(items, _routing_rows([_op("A1", "10")]))

    assert views.items["ITEM_CD"].to_list() == ["A1", "A2"]
    assert views.items.filter(pl.col("ITEM_CD") == "A1")["ITEM_MATERIAL"].to_list() == ["SiC"]
    assert report.rule_counts["duplicate_item_cd"] == 1
    assert _rejected(report, "duplicate_item_cd")["reason"].to_list() == ["ITEM_CD already in row 1; the first row is kept"]


def test_duplicate_operation_keeps_first() -> None:
    routings = _routing_rows([_op("A1", "10", job="A"), _op("A1", "20", job="B"), _op("A1", "10", job="C")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.active_routings["JOB_CD"].to_list() == ["A", "B"]
    assert report.rule_counts["duplicate_operation"] == 1
    assert _rejected(report, "duplicate_operation")["row"].to_list() == [3]


# --- routing versions ------------------------------------------------------------------


def _version(item: str, rout: str, major: str | None, valid_from: str, valid_to: str, jobs: list[str]) -> list[dict]:
    return [
        _op(item, str(10 * (i + 1)), job=job, ROUT_NO=rout, MAJOR_FLG=major,
            VALID_FROM_DT=valid_from, VALID_TO_DT=valid_to)
        for i, job in enumerate(jobs)
    ]


def test_version_choice_major_valid_then_latest() -> None:
    rows = [
        # A: the main routing wins over a newer non-main one.
        *_version("A", "R1", "Y", "2001-01-01", "2999-12-31", ["MAIN"]),
        *_version("A", "R2", "N", "2020-01-01", "2999-12-31", ["NEWER"]),
        # B: the main routing expired, so the latest valid routing is chosen.
        *_version("B", "R1", "Y", "2001-01-01", "2020-12-31", ["EXPIRED"]),
        *_version("B", "R2", "N", "2010-01-01", "2999-12-31", ["VALID"]),
        # C: two valid main routings: the latest VALID_FROM_DT wins.
        *_version("C", "R1", "Y", "2001-01-01", "2999-12-31", ["OLD"]),
        *_version("C", "R2", "Y", "2020-01-01", "2999-12-31", ["NEW"]),
        # D: nothing valid on the reference date: the latest overall.
        *_version("D", "R1", "Y", "2001-01-01", "2010-12-31", ["OLDEST"]),
        *_version("D", "R2", "N", "2011-01-01", "2020-12-31", ["LATEST"]),
        *_version("D", "R3", "N", "2030-01-01", "2999-12-31", ["FUTURE"]),
        # E: equal main routings: the higher ROUT_NO wins.
        *_version("E", "R1", "Y", "2001-01-01", "2999-12-31", ["E1"]),
        *_version("E", "R2", "Y", "2001-01-01", "2999-12-31", ["E2"]),
    ]
    views, report = _validate(_items(["A", "B", "C", "D", "E"]), _routing_rows(rows))

    chosen = dict(views.active_routings.select("ITEM_CD", "JOB_CD").iter_rows())
    assert chosen == {"A": "MAIN", "B": "VALID", "C": "NEW", "D": "FUTURE", "E": "E2"}
    assert report.rule_counts["routing_fallback_not_major"] == 1
    assert report.rule_counts["routing_fallback_expired"] == 1
    assert views.routings.height == len(rows)


def test_expired_operation_of_valid_version_dropped() -> None:
    rows = [
        _op("A", "10", job="KEEP", VALID_FROM_DT="2001-01-01", VALID_TO_DT="2999-12-31"),
        _op("A", "20", job="REPLACED", VALID_FROM_DT="2001-01-01", VALID_TO_DT="2019-12-31"),
        _op("A", "30", job="NEW", VALID_FROM_DT="2020-01-01", VALID_TO_DT="2999-12-31"),
    ]
    views, _ = _validate(_items(["A"]), _routing_rows(rows))

    assert views.active_routings["JOB_CD"].to_list() == ["KEEP", "NEW"]


def test_routing_without_major_flag_column_chosen() -> None:
    rows = [{k: v for k, v in _op("A", seq).items() if k != "MAJOR_FLG"} for seq in ("10", "20")]
    views, report = _validate(_items(["A"]), _routing_rows(rows))

    assert views.active_routings["PROC_SEQ"].to_list() == [10, 20]
    assert "MAJOR_FLG" in report.missing_columns[schema.ROUTING_VIEW]


def test_routing_item_not_in_master() -> None:
    routings = _routing_rows([_op("A1", "10"), _op("GHOST", "10"), _op("GHOST", "20")])
    views, report = _validate(_items(["A1"]), routings)

    assert views.active_routings["ITEM_CD"].to_list() == ["A1"]
    assert sorted(views.routings["ITEM_CD"].to_list()) == ["A1", "GHOST", "GHOST"]
    assert report.rule_counts["routing_item_not_in_master"] == 2
    rejected = _rejected(report, "routing_item_not_in_master")
    assert rejected["ITEM_CD"].to_list() == ["GHOST", "GHOST"]
    assert rejected["row"].to_list() == [2, 3]


def test_item_without_routing_stays() -> None:
    views, report = _validate(_items(["A1", "B1", "C1"]), _routing_rows([_op("A1", "10")]))

    assert views.items["ITEM_CD"].to_list() == ["A1", "B1", "C1"]
    assert report.rule_counts["item_without_routing"] == 2
    assert report.to_dict()["rule_counts"]["item_without_routing"] == 2


# --- work orders -----------------------------------------------------------------------


def test_work_orders_rules() -> None:
    work_orders = pl.DataFrame({
        "ITEM_CD": ["A1", "A1", "A1", "A1"],
        "PROC_SEQ": ["10", "10", "20", "20"],
        "MACH_WORKED_HOURS": ["1.5", "2", "-1", "1"],
        "SETUP_HOURS": ["0.5", "0", "0", "0"],
        "ORDER_QTY": ["10", "5", "5", "1,000"],
        "BAD_QTY": ["0", "5", "0", "NULL"],
        "REPORT_DT": ["2023-09-15", "20230916", "2023-09-17", "2023-09-18"],
    })
    views, report = _validate(_items(["A1"]), _routing_rows([_op("A1", "10")]), work_orders)

    orders = views.work_orders
    assert orders.schema == schema.clean_schema(schema.WORK_ORDER_VIEW)
    assert orders.height == 3
    assert orders["ORDER_QTY"].to_list() == [10.0, 5.0, 1000.0]
    assert report.rule_counts["negative_hours"] == 1
    assert report.rule_counts["zero_good_quantity"] == 1


# --- output contract and report ---------------------------------------------------------


def test_empty_views_keep_schema() -> None:
    items = pl.DataFrame({"ITEM_CD": []}, schema={"ITEM_CD": pl.String})
    routings = pl.DataFrame(schema={c: pl.String for c in ["ITEM_CD", "PROC_SEQ", "JOB_CD"]})
    views, report = validate_views(RawViews(items, routings, pl.DataFrame()), reference_date=REFERENCE)

    assert views.items.schema == schema.clean_schema(schema.ITEM_VIEW)
    assert views.routings.schema == schema.clean_schema(schema.ROUTING_VIEW)
    assert views.active_routings.schema == schema.clean_schema(schema.ROUTING_VIEW)
    assert views.work_orders.schema == schema.clean_schema(schema.WORK_ORDER_VIEW)
    assert views.items.height == views.routings.height == views.work_orders.height == 0
    assert report.rejected.height == 0


def test_output_follows_contract() -> None:
    routings = _routing_rows([_op("A1", "10", RES_CD="CNC-01", INSIDE_FLAG="Y")])
    views, _ = _validate(_items(["A1"], OUTDIAMETER=["10"]), routings)

    assert views.items.schema == schema.clean_schema(schema.ITEM_VIEW)
    assert views.routings.schema == schema.clean_schema(schema.ROUTING_VIEW)
    assert views.active_routings.schema == schema.clean_schema(schema.ROUTING_VIEW)
    assert views.work_orders.schema == schema.clean_schema(schema.WORK_ORDER_VIEW)


def test_report_forms(caplog: pytest.LogCaptureFixture) -> None:
    routings = _routing_rows([_op("A1", "10"), _op("A1", "20", TIME_UNIT="DAY"), _op("A1", "30", TIME_UNIT="S")])
    views, report = _validate(_items(["A1", "B1"]), routings)

    frame = report.to_frame()
    assert frame.columns[:2] == ["rule", "count"]
    assert dict(frame.select("rule", "count").iter_rows()) == report.rule_counts
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["rule_counts"]["unknown_time_unit"] == 1
    assert payload["rejected"][0]["rule"] == "unknown_time_unit"
    assert payload["row_counts"][schema.ROUTING_VIEW] == {"input": 3, "output": 2}
    assert report.rows_left_out == 1
    assert report.rejected.columns == ["view", "row", "ITEM_CD", "rule", "reason"]
    assert set(report.rule_counts) <= set(RULES)

    with caplog.at_level(logging.INFO):
        report.log_summary(logging.getLogger("test"))
    assert "unknown_time_unit" in caplog.text
    assert "3 rows in, 2 rows out" in caplog.text


def test_rejected_rows_capped_but_counted() -> None:
    n = MAX_STORED_PER_RULE + 500
    routings = _routing_rows([_op("A1", str(i), TIME_UNIT="DAY") for i in range(1, n + 1)])
    _, report = _validate(_items(["A1"]), routings)

    assert report.rule_counts["unknown_time_unit"] == n
    assert report.rejected.height == MAX_STORED_PER_RULE


def test_every_rule_has_locale_texts() -> None:
    from routing_core.i18n import has_key

    for rule in RULES:
        assert has_key(f"validation.rule.{rule}", "ko"), rule
        assert has_key(f"validation.rule.{rule}", "en"), rule


def test_fingerprint_stable_and_sensitive() -> None:
    rows = [_op("A1", "10"), _op("A1", "20", job="B"), _op("B1", "10")]
    items = _items(["A1", "B1"])
    first, _ = _validate(items, _routing_rows(rows))
    shuffled, _ = _validate(items.reverse(), _routing_rows(rows[::-1]))
    changed_rows = [*rows[:2], _op("B1", "10", RUN_TIME="6")]
    changed, _ = _validate(items, _routing_rows(changed_rows))

    digest = data_fingerprint(first)
    assert len(digest) == 64
    assert digest == data_fingerprint(shuffled)
    assert digest != data_fingerprint(changed)


def test_validate_items_keeps_order() -> None:
    frame = pl.DataFrame({"품목코드": ["Z9", "A1", "M5"], "외경": ["2", "1", "3"], "외경단위": ["inch", "mm", "mm"]})
    items, report = validate_items(frame)

    assert items["ITEM_CD"].to_list() == ["Z9", "A1", "M5"]
    assert items["OUTDIAMETER"].to_list() == pytest.approx([50.8, 1.0, 3.0])
    assert items.schema == schema.clean_schema(schema.ITEM_VIEW)
    assert report.rule_counts["inch_converted_to_mm"] == 1


def test_column_list_capped_and_printable() -> None:
    names = ["A\nB", "x" * 45, *[f"C{i}" for i in range(20)]]

    shown = format_column_list(names)

    assert shown.startswith("A?B, " + "x" * 40 + "…, C0, ")
    assert shown.endswith("C7 … and 12 more")
    assert format_column_list([]) == "(none)"
    assert format_column_list(["A", "B"]) == "A, B"


def test_source_problem_rejects_row() -> None:
    frame = _items(["A1", "A2", "A3"]).with_columns(
        pl.Series(SOURCE_PROBLEM_COLUMN, [None, "line 3 has 4 fields, header has 2", None], dtype=pl.String)
    )

    items, report = validate_items(frame)

    assert items["ITEM_CD"].to_list() == ["A1", "A3"]
    assert report.rejected.select("row", "rule", "reason").rows() == [(2, "ragged_line", "line 3 has 4 fields, header has 2")]
    assert not any(SOURCE_PROBLEM_COLUMN in note for note in report.notes)


def test_changed_values_listed_with_input_text():
    items = pl.DataFrame({"ITEM_CD": ["A", "B"], "OUTDIAMETER": ["abc", "10"], "STANDARD_YN": ["maybe", "Y"]})
    routings = pl.DataFrame({
        "ITEM_CD": ["A"], "PROC_SEQ": ["10"], "JOB_CD": ["X"], "SETUP_TIME": ["1"], "RUN_TIME": ["1"],
    })
    orders = pl.DataFrame({
        "ITEM_CD": ["A"], "PROC_SEQ": ["10"], "SETUP_HOURS": ["1"], "MACH_WORKED_HOURS": ["1"],
        "ORDER_QTY": ["1"], "BAD_QTY": ["0"], "REPORT_DT": ["yesterday"],
    })
    _, report = validate_views(RawViews(items, routings, orders))
    changed = {(r["rule"], r["detail"]) for r in report.changed.iter_rows(named=True)}
    assert ("number_set_null", "OUTDIAMETER=abc") in changed
    assert ("unknown_flag_value", "STANDARD_YN=maybe") in changed
    assert ("invalid_date_set_null", "REPORT_DT=yesterday") in changed


def test_unreadable_validity_date_rejects_version():
    rows = [
        _op("A1", "10", ROUT_NO="01", MAJOR_FLG="Y", VALID_TO_DT="2020-13-45", JOB_CD="OLD"),
        _op("A1", "10", ROUT_NO="02", MAJOR_FLG="N", VALID_FROM_DT="2021. 1. 1.", VALID_TO_DT="2999년 12월 31일", JOB_CD="NEW"),
    ]
    views, report = _validate(_items(["A1"]), _routing_rows(rows))
    assert views.active_routings["JOB_CD"].to_list() == ["NEW"]
    assert _rejected(report, "invalid_validity_date")["row"].to_list() == [1]
    assert "VALID_TO_DT '2020-13-45' is not a date" in _rejected(report, "invalid_validity_date")["reason"][0]


def test_exact_duplicate_compares_unreadable_text():
    rows = [_op("A1", "10"), _op("A1", "20", SETUP_TIME="abc"), _op("A1", "20", SETUP_TIME=None)]
    views, report = _validate(_items(["A1"]), _routing_rows(rows))
    assert views.active_routings["PROC_SEQ"].to_list() == [10, 20]
    assert report.rule_counts.get("exact_duplicate", 0) == 0
    assert _rejected(report, "not_a_number")["row"].to_list() == [2]


def test_absurd_sizes_set_null_and_reported():
    items = _items(["A", "B"], OUTDIAMETER=["1e308", "50"], IN_SEALSIZE=["2e9", "30"])
    views, report = _validate(items, _routing_rows([_op("A", "10"), _op("B", "10")]))
    row = views.items.filter(pl.col("ITEM_CD") == "A").row(0, named=True)
    assert row["OUTDIAMETER"] is None
    assert row["IN_SEALSIZE"] is None
    assert report.rule_counts["absurd_size_set_null"] == 1
    assert views.items.filter(pl.col("ITEM_CD") == "B")["OUTDIAMETER"].to_list() == [50.0]


def test_absurd_work_order_hours_reject_row():
    orders = pl.DataFrame({
        "ITEM_CD": ["A", "A"], "PROC_SEQ": ["10", "10"], "SETUP_HOURS": ["1", "1e300"],
        "MACH_WORKED_HOURS": ["2", "2"], "ORDER_QTY": ["5", "5"], "BAD_QTY": ["0", "0"],
    })
    views, report = _validate(_items(["A"]), _routing_rows([_op("A", "10")]), orders)
    assert views.work_orders.height == 1
    assert _rejected(report, "absurd_hours")["row"].to_list() == [2]


def test_bad_geometry_set_null_or_reported():
    items = pl.DataFrame({
        "ITEM_CD": ["A", "B", "C"], "OUTDIAMETER": ["-50", "50", "60"], "INDIAMETER": ["10", "80", "20"],
    })
    orders = pl.DataFrame(schema={"ITEM_CD": pl.String, "PROC_SEQ": pl.String})
    routings = pl.DataFrame(schema={"ITEM_CD": pl.String, "PROC_SEQ": pl.String, "JOB_CD": pl.String})
    views, report = validate_views(RawViews(items, routings, orders))
    assert views.items.filter(pl.col("ITEM_CD") == "A")["OUTDIAMETER"][0] is None
    assert report.rule_counts["non_positive_geometry_set_null"] == 1
    assert report.rule_counts["inner_diameter_not_below_outer"] == 1
    assert views.items.filter(pl.col("ITEM_CD") == "B")["INDIAMETER"][0] == 80.0


def test_changed_values_show_value_before_and_after():
    items = _items(["A", "B"], OUTDIAMETER=["2", "-5"], INDIAMETER=["1", None], OUTDIAMETER_UNIT=["inch", "mm"])
    routings = _routing_rows([
        _op("A", "10", TIME_UNIT="H", RUN_TIME="0.5", RUN_TIME_QTY="0"),
        _op("A", "20", TIME_UNIT=None),
    ])
    orders = pl.DataFrame({"ITEM_CD": ["A"], "ROUT_NO": ["R1"], "PROC_SEQ": ["10"], "ORDER_QTY": ["4"], "BAD_QTY": ["4"]})
    _, report = _validate(items, routings, orders)
    changed = {(r["rule"], r["detail"]) for r in report.changed.iter_rows(named=True)}
    assert ("inch_converted_to_mm", "OUTDIAMETER=2.0 in → 50.8 mm; INDIAMETER=1.0 in → 25.4 mm") in changed
    assert ("non_positive_geometry_set_null", "OUTDIAMETER=-5.0 → null") in changed
    assert ("time_unit_converted", "TIME_UNIT=H (×60 → M)") in changed
    assert ("time_unit_missing_assumed_minutes", "TIME_UNIT=null → M") in changed
    assert ("run_time_qty_defaulted", "RUN_TIME_QTY=0.0 → 1") in changed
    assert ("zero_good_quantity", "ORDER_QTY=4.0, BAD_QTY=4.0") in changed


def test_empty_times_kept_and_reported():
    routings = _routing_rows([_op("A", "10", RUN_TIME="NaN"), _op("A", "20", SETUP_TIME="NULL"), _op("A", "30")])
    views, report = _validate(_items(["A"]), routings)
    assert views.routings.height == 3
    assert report.rule_counts["time_missing"] == 2
    details = report.changed.filter(pl.col("rule") == "time_missing").get_column("detail").to_list()
    assert details == ["RUN_TIME=null", "SETUP_TIME=null"]


def test_two_headers_for_one_column():
    routings = _routing_rows([_op("A1", "10")]).with_columns(pl.lit("").alias("준비시간"))
    views, report = _validate(_items(["A1"]), routings)
    assert views.routings["SETUP_TIME"].to_list() == [10.0]

    both = _routing_rows([_op("A1", "10")]).with_columns(pl.lit("7").alias("준비시간"))
    with pytest.raises(DataError, match="all mean SETUP_TIME and all hold values"):
        _validate(_items(["A1"]), both)


def test_inverted_validity_window_rejected():
    rows = [_op("A1", "10", VALID_FROM_DT="2025-01-01", VALID_TO_DT="2024-01-01"), _op("A1", "20")]
    views, report = _validate(_items(["A1"]), _routing_rows(rows))
    rejected = _rejected(report, "invalid_validity_date")
    assert rejected["row"].to_list() == [1]
    assert rejected["reason"].to_list() == ["VALID_FROM_DT 2025-01-01 is after VALID_TO_DT 2024-01-01"]


def test_tiny_good_quantity_rejected():
    orders = pl.DataFrame({
        "ITEM_CD": ["A", "A"], "PROC_SEQ": ["10", "10"], "SETUP_HOURS": ["1", "1"],
        "MACH_WORKED_HOURS": ["2", "2"], "ORDER_QTY": ["5", "0.001"], "BAD_QTY": ["0", "0"],
    })
    views, report = _validate(_items(["A"]), _routing_rows([_op("A", "10")]), orders)
    assert views.work_orders.height == 1
    assert "min per piece" in _rejected(report, "absurd_hours")["reason"][0]
