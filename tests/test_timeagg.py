"""Tests of routing_core.timeagg against a small table whose statistics are computed by hand.

Quantiles use linear interpolation: for n sorted values x[0..n-1], the q-quantile is
x[f] + (h - f)(x[f+1] - x[f]) with h = q(n - 1), f = floor(h). The trimmed mean drops
k = floor(0.1 n) values at each end.

The routing table (times in minutes):

    RES_CD   JOB_CD  INSIDE  rows                        SETUP            RUN / RUN_TIME_QTY
    CNC-01   F61-1   Y       A10 B10 C10 D10 E10         10 14 18 22 26   2/1 4/2 30/10 4/1 5/1
    CNC-01   F62-1   Y       A20 B20 C20 D20 E20         12 16 20 24 100  20/10 3/1 6/2 8/2 null/1
    OUT-01   Q30-1   N       A30 B30 C30 D30 E30 F10     30 ×5, 90        null
    INS-WC2  INS-1   Y       A40 B40 C40 D40 E40         30 30 30 40 50   3/1
    MAN-01   M10-1   Y       G10                         every time null

QUEUE_TIME is null on CNC-01 and INS-WC2 and 60 on OUT-01; WAIT_TIME is 10 on
INS-WC2 only; MOVE_TIME is 5 on CNC-01, 30 on OUT-01 and 0 on INS-WC2.
"""

from __future__ import annotations

import io
import json
import math
from datetime import date

import polars as pl
import pytest

from routing_core import timeagg
from routing_core.schema import ITEM_VIEW, ROUTING_VIEW, WORK_ORDER_VIEW, clean_schema
from routing_core.timeagg import TimeFilters
from routing_core.validation import Views

APPROX = {"rel": 1e-12, "abs": 1e-12}


def _frame(view: str, columns: dict[str, list]) -> pl.DataFrame:
    """Build a frame with the full validated schema of ``view``; absent columns are null."""
    schema = clean_schema(view)
    height = len(next(iter(columns.values())))
    data = {name: columns.get(name, [None] * height) for name in schema}
    return pl.DataFrame(data, schema=schema)


def _routings() -> pl.DataFrame:
    rows = [
        # ITEM, SEQ, JOB, RES, INSIDE, SETUP, RUN, QTY, QUEUE, WAIT, MOVE
        ("A", 10, "F61-1", "CNC-01", "Y", 10.0, 2.0, 1.0, None, None, 5.0),
        ("B", 10, "F61-1", "CNC-01", "Y", 14.0, 4.0, 2.0, None, None, 5.0),
        ("C", 10, "F61-1", "CNC-01", "Y", 18.0, 30.0, 10.0, None, None, 5.0),
        ("D", 10, "F61-1", "CNC-01", "Y", 22.0, 4.0, 1.0, None, None, 5.0),
        ("E", 10, "F61-1", "CNC-01", "Y", 26.0, 5.0, 1.0, None, None, 5.0),
        ("A", 20, "F62-1", "CNC-01", "Y", 12.0, 20.0, 10.0, None, None, 5.0),
        ("B", 20, "F62-1", "CNC-01", "Y", 16.0, 3.0, 1.0, None, None, 5.0),
        ("C", 20, "F62-1", "CNC-01", "Y", 20.0, 6.0, 2.0, None, None, 5.0),
        ("D", 20, "F62-1", "CNC-01", "Y", 24.0, 8.0, 2.0, None, None, 5.0),
        ("E", 20, "F62-1", "CNC-01", "Y", 100.0, None, 1.0, None, None, 5.0),
        ("A", 30, "Q30-1", "OUT-01", "N", 30.0, None, 1.0, 60.0, None, 30.0),
        ("B", 30, "Q30-1", "OUT-01", "N", 30.0, None, 1.0, 60.0, None, 30.0),
        ("C", 30, "Q30-1", "OUT-01", "N", 30.0, None, 1.0, 60.0, None, 30.0),
        ("D", 30, "Q30-1", "OUT-01", "N", 30.0, None, 1.0, 60.0, None, 30.0),
        ("E", 30, "Q30-1", "OUT-01", "N", 30.0, None, 1.0, 60.0, None, 30.0),
        ("F", 10, "Q30-1", "OUT-01", "N", 90.0, None, 1.0, 60.0, None, 30.0),
        ("A", 40, "INS-1", "INS-WC2", "Y", 30.0, 3.0, 1.0, None, 10.0, 0.0),
        ("B", 40, "INS-1", "INS-WC2", "Y", 30.0, 3.0, 1.0, None, 10.0, 0.0),
        ("C", 40, "INS-1", "INS-WC2", "Y", 30.0, 3.0, 1.0, None, 10.0, 0.0),
        ("D", 40, "INS-1", "INS-WC2", "Y", 40.0, 3.0, 1.0, None, 10.0, 0.0),
        ("E", 40, "INS-1", "INS-WC2", "Y", 50.0, 3.0, 1.0, None, 10.0, 0.0),
        ("G", 10, "M10-1", "MAN-01", "Y", None, None, 1.0, None, None, None),
    ]
    names = ["ITEM_CD", "PROC_SEQ", "JOB_CD", "RES_CD", "INSIDE_FLAG", "SETUP_TIME", "RUN_TIME",
             "RUN_TIME_QTY", "QUEUE_TIME", "WAIT_TIME", "MOVE_TIME"]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    columns["ROUT_NO"] = ["01"] * len(rows)
    columns["TIME_UNIT"] = ["M"] * len(rows)
    columns["MAJOR_FLG"] = ["Y"] * len(rows)
    return _frame(ROUTING_VIEW, columns)


def _work_orders() -> pl.DataFrame:
    rows = [
        # ITEM, SEQ, JOB, RES, REPORT_DT, SETUP_HOURS, MACH_WORKED_HOURS, ORDER_QTY, BAD_QTY
        ("A", 10, "F61-1", "CNC-01", date(2024, 1, 10), 0.5, 1.2, 20.0, 0.0),  # run 72/20 = 3.6
        ("A", 10, "F61-1", "CNC-01", date(2024, 2, 10), 0.25, 2.0, 50.0, 10.0),  # run 120/40 = 3.0
        ("A", 10, "F61-1", "CNC-01", date(2024, 3, 10), None, 0.6, 10.0, None),  # run 36/10 = 3.6
        ("A", 10, "F61-1", "CNC-01", date(2024, 4, 10), 1.0, 1.0, 5.0, 5.0),  # good 0: skipped
        ("A", 10, "F61-1", "CNC-01", date(2024, 5, 10), 0.5, 4.0, 100.0, 20.0),  # run 240/80 = 3.0
        ("B", 40, "INS-1", "INS-WC2", date(2024, 3, 15), 0.25, 0.5, 3.0, 3.0),  # good 0: skipped
    ]
    names = ["ITEM_CD", "PROC_SEQ", "JOB_CD", "RES_CD", "REPORT_DT", "SETUP_HOURS",
             "MACH_WORKED_HOURS", "ORDER_QTY", "BAD_QTY"]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    columns["ROUT_NO"] = ["01"] * len(rows)
    return _frame(WORK_ORDER_VIEW, columns)


def _items() -> pl.DataFrame:
    # G has no item-master row.
    return _frame(
        ITEM_VIEW,
        {
            "ITEM_CD": ["A", "B", "C", "D", "E", "F"],
            "ITEM_GRP1": ["SEAL", "SEAL", "PUMP", "PUMP", "SEAL", "SEAL"],
            "ITEM_MATERIAL": ["SIC", "CARBON", "316SS", "SIC", "SIC", "CARBON"],
            "PART_TYPE": ["RING", "RING", "SLEEVE", "SLEEVE", "RING", "BELLOWS"],
        },
    )


def _row(frame: pl.DataFrame, **keys: str) -> dict:
    selected = frame.filter(*[pl.col(k) == v for k, v in keys.items()])
    assert selected.height == 1, f"expected one row for {keys}, got {selected.height}"
    return selected.row(0, named=True)


def _assert_stats(row: dict, measure: str, expected: dict) -> None:
    for stat, value in expected.items():
        column = f"{measure}_{stat}"
        if value is None or isinstance(value, int):
            assert row[column] == value, column
        else:
            assert row[column] == pytest.approx(value, **APPROX), column


@pytest.fixture(scope="module")
def by_resource() -> pl.DataFrame:
    return timeagg.aggregate_times(_routings(), _work_orders(), _items(), by=["RES_CD"])


# --- aggregate_times: hand-computed statistics -------------------------------------------


def test_aggregate_groups_and_counts(by_resource: pl.DataFrame) -> None:
    assert by_resource["RES_CD"].to_list() == ["CNC-01", "INS-WC2", "MAN-01", "OUT-01"]
    assert by_resource["n_operations"].to_list() == [10, 5, 1, 6]
    assert by_resource["n_orders"].to_list() == [5, 1, 0, 0]
    assert by_resource["n_zero_good_qty"].to_list() == [1, 1, 0, 0]
    assert by_resource.schema == timeagg.aggregate_schema(["RES_CD"])


def test_aggregate_planned_setup_stats(by_resource: pl.DataFrame) -> None:
    row = _row(by_resource, RES_CD="CNC-01")
    # sorted: 10 12 14 16 18 20 22 24 26 100 (n = 10)
    _assert_stats(row, "planned_setup_min", {
        "n": 10,
        "sum": 262.0,  # 10+12+14+16+18+20+22+24+26+100
        "median": 19.0,  # h = 4.5: 18 + 0.5 × (20 - 18)
        "p25": 14.5,  # h = 2.25: 14 + 0.25 × (16 - 14)
        "p75": 23.5,  # h = 6.75: 22 + 0.75 × (24 - 22)
        "p90": 33.4,  # h = 8.1: 26 + 0.1 × (100 - 26)
        "trimmed_mean": 19.0,  # k = 1: drop 10 and 100, (12+14+...+26) / 8 = 152 / 8
        # |x - 19| sorted: 1 1 3 3 5 5 7 7 9 81, MAD = 5, scale 7.413, limit 22.239: only 100
        "n_outliers": 1,
    })


def test_aggregate_planned_run_per_piece(by_resource: pl.DataFrame) -> None:
    row = _row(by_resource, RES_CD="CNC-01")
    # RUN_TIME / RUN_TIME_QTY: 2 2 3 4 5 | 2 3 3 4 null -> sorted 2 2 2 3 3 3 4 4 5 (n = 9)
    _assert_stats(row, "planned_run_min", {
        "n": 9,
        "sum": 28.0,
        "median": 3.0,  # h = 4
        "p25": 2.0,  # h = 2
        "p75": 4.0,  # h = 6
        "p90": 4.2,  # h = 7.2: 4 + 0.2 × (5 - 4)
        "trimmed_mean": 28.0 / 9,  # k = floor(0.9) = 0: plain mean
        "n_outliers": 0,  # |x - 3|: 0 0 0 1 1 1 1 1 2, MAD = 1, limit 4.4478
    })


def test_aggregate_actual_stats_and_ratio(by_resource: pl.DataFrame) -> None:
    row = _row(by_resource, RES_CD="CNC-01")
    # per piece: 72/20 = 3.6, 120/40 = 3.0, 36/10 = 3.6, 240/80 = 3.0; the good-0 order skipped
    _assert_stats(row, "actual_run_min", {
        "n": 4,
        "sum": 13.2,
        "median": 3.3,  # h = 1.5: 3.0 + 0.5 × 0.6
        "p25": 3.0,  # h = 0.75 between 3.0 and 3.0
        "p75": 3.6,  # h = 2.25 between 3.6 and 3.6
        "p90": 3.6,  # h = 2.7 between 3.6 and 3.6
        "trimmed_mean": 3.3,  # k = 0: 13.2 / 4
        "n_outliers": 0,  # every |x - 3.3| is 0.3 = MAD
    })
    # setup per order: 0.5 h, 0.25 h, null, 1.0 h, 0.5 h -> 30 15 60 30 -> sorted 15 30 30 60
    _assert_stats(row, "actual_setup_min", {
        "n": 4,
        "sum": 135.0,
        "median": 30.0,
        "p25": 26.25,  # h = 0.75: 15 + 0.75 × 15
        "p75": 37.5,  # h = 2.25: 30 + 0.25 × 30
        "p90": 51.0,  # h = 2.7: 30 + 0.7 × 30
        "trimmed_mean": 33.75,  # 135 / 4
        "n_outliers": 0,  # |x - 30|: 0 0 15 30, MAD = 7.5, limit 33.36
    })
    assert row["run_ratio_actual_to_planned"] == pytest.approx(1.1, **APPROX)  # 3.3 / 3.0


def test_aggregate_null_and_zero_minutes(by_resource: pl.DataFrame) -> None:
    cnc = _row(by_resource, RES_CD="CNC-01")
    # QUEUE_TIME is null on every CNC-01 row: n = 0 and null stats, never 0 minutes
    _assert_stats(cnc, "planned_queue_min", {
        "n": 0, "sum": None, "median": None, "p25": None, "p75": None, "p90": None,
        "trimmed_mean": None, "n_outliers": 0,
    })
    _assert_stats(cnc, "planned_move_min", {"n": 10, "sum": 50.0, "median": 5.0, "p90": 5.0, "n_outliers": 0})

    inspection = _row(by_resource, RES_CD="INS-WC2")
    # MOVE_TIME 0 on five rows is a real 0, not a missing value
    _assert_stats(inspection, "planned_move_min", {"n": 5, "sum": 0.0, "median": 0.0})
    _assert_stats(inspection, "planned_wait_min", {"n": 5, "sum": 50.0, "trimmed_mean": 10.0})

    manual = _row(by_resource, RES_CD="MAN-01")
    for measure in timeagg.MEASURES:
        _assert_stats(manual, measure, {"n": 0, "sum": None, "median": None, "trimmed_mean": None})
    assert manual["run_ratio_actual_to_planned"] is None


def test_aggregate_all_null_actuals(by_resource: pl.DataFrame) -> None:
    row = _row(by_resource, RES_CD="INS-WC2")
    # its only order has ORDER_QTY 3 and BAD_QTY 3: no run time per piece at all
    assert row["n_orders"] == 1
    assert row["n_zero_good_qty"] == 1
    _assert_stats(row, "actual_run_min", {
        "n": 0, "sum": None, "median": None, "p25": None, "p75": None, "p90": None,
        "trimmed_mean": None, "n_outliers": 0,
    })
    _assert_stats(row, "actual_setup_min", {"n": 1, "sum": 15.0, "median": 15.0})  # 0.25 h × 60
    assert row["run_ratio_actual_to_planned"] is None

    outside = _row(by_resource, RES_CD="OUT-01")  # no work order at all
    _assert_stats(outside, "actual_run_min", {"n": 0, "sum": None, "median": None})
    _assert_stats(outside, "actual_setup_min", {"n": 0, "sum": None, "median": None})


def test_outliers_mad_zero_fallback(by_resource: pl.DataFrame) -> None:
    outside = _row(by_resource, RES_CD="OUT-01")
    # 30 30 30 30 30 90: MAD = 0, mean |x - 30| = 60/6 = 10, scale 12.533, limit 37.6: 90 flagged
    _assert_stats(outside, "planned_setup_min", {
        "n": 6, "sum": 240.0, "median": 30.0,
        "p25": 30.0,  # h = 1.25
        "p75": 30.0,  # h = 3.75
        "p90": 60.0,  # h = 4.5: 30 + 0.5 × (90 - 30)
        "trimmed_mean": 40.0,  # k = 0: 240 / 6
        "n_outliers": 1,
    })
    inspection = _row(by_resource, RES_CD="INS-WC2")
    # 30 30 30 40 50: MAD = 0, mean |x - 30| = 30/5 = 6, scale 7.52, limit 22.56: none flagged
    _assert_stats(inspection, "planned_setup_min", {
        "n": 5, "sum": 180.0, "median": 30.0,
        "p25": 30.0,  # h = 1
        "p75": 40.0,  # h = 3
        "p90": 46.0,  # h = 3.6: 40 + 0.6 × (50 - 40)
        "trimmed_mean": 36.0,  # k = 0: 180 / 5
        "n_outliers": 0,
    })
    # every run per piece is 3: all deviations 0, nothing flagged
    _assert_stats(inspection, "planned_run_min", {"n": 5, "median": 3.0, "n_outliers": 0})


def test_trimmed_mean_drops_two_per_side() -> None:
    # n = 20, k = 2: setups 1..18 plus 1000 and 0.5; drop 0.5, 1 and 18, 1000
    setups = [float(v) for v in range(1, 19)] + [1000.0, 0.5]
    routings = _frame(ROUTING_VIEW, {
        "ITEM_CD": [f"I{i:02d}" for i in range(20)], "PROC_SEQ": [10] * 20, "JOB_CD": ["J"] * 20,
        "RES_CD": ["R"] * 20, "SETUP_TIME": setups, "RUN_TIME_QTY": [1.0] * 20,
    })
    row = timeagg.aggregate_times(routings, by="RES_CD").row(0, named=True)
    assert row["planned_setup_min_trimmed_mean"] == pytest.approx(9.5, **APPROX)  # mean of 2..17
    assert row["planned_setup_min_median"] == pytest.approx(9.5, **APPROX)  # h = 9.5: 9 + 0.5 × 1
    # sorted: 0.5 1 2 ... 18 1000, so x[i] = i for i = 1..18
    assert row["planned_setup_min_p90"] == pytest.approx(17.1, **APPROX)  # h = 17.1: 17 + 0.1 × (18 - 17)


def test_aggregate_by_job(by_resource: pl.DataFrame) -> None:
    by_job = timeagg.aggregate_times(_routings(), _work_orders(), by="JOB_CD")
    assert by_job["JOB_CD"].to_list() == ["F61-1", "F62-1", "INS-1", "M10-1", "Q30-1"]
    first = _row(by_job, JOB_CD="F61-1")
    # setups 10 14 18 22 26 and run per piece 2 2 3 4 5
    _assert_stats(first, "planned_setup_min", {"n": 5, "sum": 90.0, "median": 18.0, "p90": 24.4})  # 22 + 0.6 × 4
    _assert_stats(first, "planned_run_min", {"n": 5, "median": 3.0})
    assert first["n_orders"] == 5
    assert first["run_ratio_actual_to_planned"] == pytest.approx(1.1, **APPROX)  # 3.3 / 3
    second = _row(by_job, JOB_CD="F62-1")
    assert second["n_orders"] == 0
    _assert_stats(second, "planned_run_min", {"n": 4, "median": 3.0, "p90": 3.7})  # 2 3 3 4: h = 1.5, h = 2.7


def test_aggregate_by_inside_flag_and_item_group() -> None:
    by_flag = timeagg.aggregate_times(_routings(), _work_orders(), by=["INSIDE_FLAG"])
    assert by_flag["INSIDE_FLAG"].to_list() == ["N", "Y"]
    assert by_flag["n_operations"].to_list() == [6, 16]
    # work orders take INSIDE_FLAG from their operation: all six are on Y operations
    assert by_flag["n_orders"].to_list() == [0, 6]

    by_group = timeagg.aggregate_times(_routings(), _work_orders(), _items(), by=["ITEM_GRP1", "RES_CD"])
    seal_cnc = _row(by_group, ITEM_GRP1="SEAL", RES_CD="CNC-01")
    # items A, B, E: setups 10 12 14 16 26 100
    _assert_stats(seal_cnc, "planned_setup_min", {"n": 6, "sum": 178.0, "median": 15.0})
    assert seal_cnc["n_orders"] == 5
    # G has no item-master row: its group key is null and sorts last
    assert by_group.row(-1, named=True)["ITEM_GRP1"] is None
    assert by_group.row(-1, named=True)["RES_CD"] == "MAN-01"


def test_aggregate_order_without_routing_row() -> None:
    extra = _frame(WORK_ORDER_VIEW, {
        "ITEM_CD": ["Z"], "ROUT_NO": ["01"], "PROC_SEQ": [10], "JOB_CD": ["F61-1"], "RES_CD": ["CNC-01"],
        "SETUP_HOURS": [0.5], "MACH_WORKED_HOURS": [1.0], "ORDER_QTY": [60.0], "BAD_QTY": [0.0],
    })
    orders = pl.concat([_work_orders(), extra])
    by_flag = timeagg.aggregate_times(_routings(), orders, by=["INSIDE_FLAG"])
    assert by_flag["INSIDE_FLAG"].to_list() == ["N", "Y", None]
    assert by_flag["n_operations"].to_list() == [6, 16, 0]
    unknown = by_flag.row(2, named=True)
    _assert_stats(unknown, "actual_run_min", {"n": 1, "median": 1.0})  # 60 min / 60 pieces
    _assert_stats(unknown, "planned_setup_min", {"n": 0, "sum": None})


def test_aggregate_overall_row() -> None:
    overall = timeagg.aggregate_times(_routings(), _work_orders(), by=[])
    assert overall.height == 1
    assert overall["n_operations"].item() == 22
    assert overall["n_orders"].item() == 6
    assert overall["planned_move_min_sum"].item() == pytest.approx(230.0)  # 10 × 5 + 6 × 30 + 5 × 0


def test_aggregate_stats_subset_and_lazy_input() -> None:
    subset = timeagg.aggregate_times(_routings().lazy(), _work_orders().lazy(), by="RES_CD", stats=["p90", "median"])
    assert "planned_setup_min_p90" in subset.columns
    assert "planned_setup_min_sum" not in subset.columns
    assert subset.schema == timeagg.aggregate_schema("RES_CD", stats=["median", "p90"])
    full = timeagg.aggregate_times(_routings(), _work_orders(), by="RES_CD")
    assert subset["planned_setup_min_p90"].to_list() == full["planned_setup_min_p90"].to_list()

    ratio_only = timeagg.aggregate_times(_routings(), _work_orders(), by="RES_CD", stats=[])
    assert "actual_run_min_median" not in ratio_only.columns
    assert ratio_only["run_ratio_actual_to_planned"][0] == pytest.approx(1.1, **APPROX)


def test_aggregate_without_work_orders() -> None:
    planned_only = timeagg.aggregate_times(_routings(), by="RES_CD")
    assert planned_only.schema == timeagg.aggregate_schema("RES_CD")
    assert planned_only["n_orders"].to_list() == [0, 0, 0, 0]
    assert planned_only["actual_run_min_n"].to_list() == [0, 0, 0, 0]
    assert planned_only["actual_run_min_median"].null_count() == 4


# --- empty selections --------------------------------------------------------------------


def test_empty_selection_has_full_schema() -> None:
    empty = timeagg.aggregate_times(
        _routings(), _work_orders(), _items(), by=["RES_CD", "ITEM_MATERIAL"], filters=TimeFilters(res_cds=["NONE"])
    )
    assert empty.height == 0
    assert empty.schema == timeagg.aggregate_schema(["RES_CD", "ITEM_MATERIAL"])
    assert empty.schema["planned_run_min_p90"] == pl.Float64
    assert empty.schema["n_orders"] == pl.Int64


def test_empty_inputs_return_empty_frames() -> None:
    routings = _routings().head(0)
    orders = _work_orders().head(0)
    assert timeagg.aggregate_times(routings, orders, by=[]).height == 0
    assert timeagg.aggregate_times(routings, orders, by=["JOB_CD"]).schema == timeagg.aggregate_schema("JOB_CD")
    assert timeagg.lead_time_min(routings).height == 0
    assert timeagg.operation_actuals(orders).height == 0
    assert timeagg.count_zero_good_quantity(orders) == 0


# --- work-order actuals ------------------------------------------------------------------


def test_work_order_actuals_rows() -> None:
    actuals = timeagg.work_order_actuals(_work_orders()).collect()
    runs = actuals["actual_run_min_per_piece"].to_list()
    assert runs[0] == pytest.approx(3.6, **APPROX)  # 1.2 h × 60 / 20
    assert runs[1] == pytest.approx(3.0, **APPROX)  # 2.0 h × 60 / (50 - 10)
    assert runs[2] == pytest.approx(3.6, **APPROX)  # 0.6 h × 60 / 10, null BAD_QTY counted as 0
    assert runs[3] is None  # good quantity 5 - 5 = 0
    assert actuals["zero_good_qty"].to_list() == [False, False, False, True, False, True]
    assert actuals["actual_setup_min"].to_list()[:4] == [30.0, 15.0, None, 60.0]


def test_zero_good_quantity_counted() -> None:
    assert timeagg.count_zero_good_quantity(_work_orders()) == 2
    negative = _frame(WORK_ORDER_VIEW, {
        "ITEM_CD": ["A", "A", "A"], "PROC_SEQ": [10, 10, 10],
        "MACH_WORKED_HOURS": [1.0, 1.0, 1.0], "ORDER_QTY": [5.0, None, 10.0], "BAD_QTY": [7.0, 0.0, 0.0],
    })
    # good -2 counts; an unknown ORDER_QTY is not a zero good quantity
    assert timeagg.count_zero_good_quantity(negative) == 1
    runs = timeagg.work_order_actuals(negative).collect()["actual_run_min_per_piece"].to_list()
    assert runs == [None, None, 6.0]  # 60 min / 10 pieces


def test_operation_actuals_for_prediction() -> None:
    actuals = timeagg.operation_actuals(_work_orders(), min_orders=3)
    assert actuals.select("ITEM_CD", "PROC_SEQ", "JOB_CD").rows() == [("A", 10, "F61-1"), ("B", 40, "INS-1")]
    first = actuals.row(0, named=True)
    assert first["n_orders"] == 5
    assert first["n_actual"] == 4
    assert first["actual_run_min"] == pytest.approx(3.3, **APPROX)  # 3.0 3.0 3.6 3.6
    assert first["actual_run_min_p25"] == pytest.approx(3.0, **APPROX)
    assert first["actual_run_min_p75"] == pytest.approx(3.6, **APPROX)
    assert first["n_actual_setup"] == 4
    assert first["actual_setup_min"] == pytest.approx(30.0)  # 15 30 30 60
    assert first["actual_setup_min_p25"] == pytest.approx(26.25)
    assert first["actual_setup_min_p75"] == pytest.approx(37.5)
    assert first["use_actuals"] is True
    second = actuals.row(1, named=True)
    assert second["n_actual"] == 0
    assert second["actual_run_min"] is None
    assert second["actual_setup_min"] == pytest.approx(15.0)
    assert second["use_actuals"] is False

    strict = timeagg.operation_actuals(_work_orders(), min_orders=5)
    assert strict["use_actuals"].to_list() == [False, False]  # 4 defined runs < 5
    with pytest.raises(ValueError, match="min_orders"):
        timeagg.operation_actuals(_work_orders(), min_orders=0)


# --- outlier flags -----------------------------------------------------------------------


def test_flag_outliers_rows() -> None:
    planned = timeagg.planned_times(_routings())
    flagged = timeagg.flag_outliers(planned, "planned_setup_min", by=["RES_CD"])
    assert flagged.height == 22  # no row dropped
    outliers = flagged.filter(pl.col("is_outlier")).select("ITEM_CD", "PROC_SEQ").sort("ITEM_CD").rows()
    assert outliers == [("E", 20), ("F", 10)]  # 100 on CNC-01, 90 on OUT-01
    e20 = _row(flagged, ITEM_CD="E", PROC_SEQ=20)
    assert e20["robust_z"] == pytest.approx(81 / (1.4826 * 5), **APPROX)  # (100 - 19) / 7.413
    f10 = _row(flagged, ITEM_CD="F", PROC_SEQ=10)
    assert f10["robust_z"] == pytest.approx(60 / (1.2533 * 10), **APPROX)  # (90 - 30) / 12.533
    g10 = _row(flagged, ITEM_CD="G", PROC_SEQ=10)
    assert g10["is_outlier"] is None  # no setup time to judge
    assert g10["robust_z"] is None

    assert flagged["ITEM_CD"].to_list() == _routings()["ITEM_CD"].to_list()  # row order kept

    counts = flagged.group_by("RES_CD").agg(pl.col("is_outlier").sum().cast(pl.Int64)).sort("RES_CD")
    by_resource = timeagg.aggregate_times(_routings(), by="RES_CD")
    assert counts["is_outlier"].to_list() == by_resource["planned_setup_min_n_outliers"].to_list()

    whole = timeagg.flag_outliers(planned, "planned_setup_min", by=[])
    # one group of 21 values, median 30: |x - 30| has MAD 10, limit 44.478: 100 and 90 flagged
    assert whole.filter(pl.col("is_outlier")).height == 2
    with pytest.raises(ValueError, match="not found"):
        timeagg.flag_outliers(planned, "NO_SUCH_COLUMN")


# --- lead time ---------------------------------------------------------------------------


def test_lead_time_lot_of_one() -> None:
    lead = timeagg.lead_time_min(_routings(), lot_size=1.0)
    assert lead["ITEM_CD"].to_list() == ["A", "B", "C", "D", "E", "F", "G"]
    a = _row(lead, ITEM_CD="A")
    # A10: 10 + 2×1/1 + 5 = 17; A20: 12 + 20×1/10 + 5 = 19; A30: 60 + 30 + 30 = 120; A40: 30 + 3 + 10 + 0 = 43
    assert a["lead_time_min"] == pytest.approx(199.0)
    assert a["n_operations"] == 4
    assert a["planned_queue_min"] == pytest.approx(60.0)
    assert a["planned_setup_min"] == pytest.approx(82.0)  # 10 + 12 + 30 + 30
    assert a["planned_run_min"] == pytest.approx(7.0)  # 2 + 2 + 3 (A30 has no run time)
    assert a["planned_wait_min"] == pytest.approx(10.0)
    assert a["planned_move_min"] == pytest.approx(40.0)  # 5 + 5 + 30 + 0
    b = _row(lead, ITEM_CD="B")
    # B10: 14 + 4×1/2 + 5 = 21; B20: 16 + 3 + 5 = 24; B30: 120; B40: 43
    assert b["lead_time_min"] == pytest.approx(208.0)


def test_lead_time_lot_of_ten() -> None:
    lead = timeagg.lead_time_min(_routings(), lot_size=10)
    # A10: 10 + 2×10/1 + 5 = 35; A20: 12 + 20×10/10 + 5 = 37; A30: 120; A40: 30 + 30 + 10 = 70
    assert _row(lead, ITEM_CD="A")["lead_time_min"] == pytest.approx(262.0)
    assert _row(lead, ITEM_CD="A")["planned_run_min"] == pytest.approx(70.0)  # 20 + 20 + 30
    # B10: 14 + 4×10/2 + 5 = 39; B20: 16 + 30 + 5 = 51; B30: 120; B40: 70
    assert _row(lead, ITEM_CD="B")["lead_time_min"] == pytest.approx(280.0)
    # C10: 18 + 30×10/10 + 5 = 53; C20: 20 + 6×10/2 + 5 = 55; C30: 120; C40: 70
    assert _row(lead, ITEM_CD="C")["lead_time_min"] == pytest.approx(298.0)
    # F has only a subcontract step with no run time: 60 + 90 + 30 for any lot
    assert _row(lead, ITEM_CD="F")["lead_time_min"] == pytest.approx(180.0)


def test_lead_time_all_null_routing() -> None:
    g = _row(timeagg.lead_time_min(_routings()), ITEM_CD="G")
    assert g["n_operations"] == 1
    assert g["lead_time_min"] is None
    for column in ("planned_queue_min", "planned_setup_min", "planned_run_min", "planned_wait_min", "planned_move_min"):
        assert g[column] is None, column


def test_lead_time_expr_per_operation() -> None:
    per_operation = _routings().with_columns(timeagg.lead_time_expr(10.0))
    assert _row(per_operation, ITEM_CD="A", PROC_SEQ=10)["lead_time_min"] == pytest.approx(35.0)
    assert _row(per_operation, ITEM_CD="B", PROC_SEQ=10)["lead_time_min"] == pytest.approx(39.0)
    assert _row(per_operation, ITEM_CD="G", PROC_SEQ=10)["lead_time_min"] is None
    for invalid in (0, -1.0, math.nan, math.inf, 1e308, timeagg.MAX_LOT_SIZE + 1):
        with pytest.raises(ValueError, match="lot_size"):
            timeagg.lead_time_expr(invalid)
    assert timeagg.lead_time_min(_routings(), lot_size=timeagg.MAX_LOT_SIZE)["lead_time_min"].is_finite().any()


# --- filters -----------------------------------------------------------------------------


def test_filter_item_attributes() -> None:
    seal = timeagg.aggregate_times(
        _routings(), _work_orders(), _items(), by="RES_CD", filters=TimeFilters(item_groups=["SEAL"])
    )
    # items A, B, E, F; G has no item-master row and drops out
    assert seal["RES_CD"].to_list() == ["CNC-01", "INS-WC2", "OUT-01"]
    assert seal["n_operations"].to_list() == [6, 3, 4]
    assert seal["n_orders"].to_list() == [5, 1, 0]

    sic = timeagg.aggregate_times(_routings(), None, _items(), by="RES_CD", filters=TimeFilters(materials="SIC"))
    assert _row(sic, RES_CD="CNC-01")["n_operations"] == 6  # A, D, E

    sleeve = timeagg.aggregate_times(_routings(), None, _items(), by="RES_CD", filters=TimeFilters(part_types=["SLEEVE"]))
    cnc = _row(sleeve, RES_CD="CNC-01")
    assert cnc["n_operations"] == 4  # C and D
    assert cnc["planned_setup_min_sum"] == pytest.approx(84.0)  # 18 + 20 + 22 + 24


def test_filter_resource_flag_and_dates() -> None:
    routings, orders, items = _routings(), _work_orders(), _items()
    cnc = timeagg.aggregate_times(routings, orders, items, by="JOB_CD", filters=TimeFilters(res_cds=["CNC-01"]))
    assert cnc["JOB_CD"].to_list() == ["F61-1", "F62-1"]

    outside = timeagg.aggregate_times(routings, orders, by="RES_CD", filters=TimeFilters(inside_flag="외주"))
    assert outside["RES_CD"].to_list() == ["OUT-01"]
    assert outside["n_orders"].to_list() == [0]

    in_house = timeagg.aggregate_times(routings, orders, by="RES_CD", filters=TimeFilters(inside_flag="Y"))
    assert in_house["n_orders"].to_list() == [5, 1, 0]

    window = TimeFilters(report_from=date(2024, 2, 1), report_to=date(2024, 4, 30))
    dated = timeagg.aggregate_times(routings, orders, by="RES_CD", filters=window)
    row = _row(dated, RES_CD="CNC-01")
    # orders of 10 Feb (3.0), 10 Mar (3.6) and 10 Apr (good 0); planned rows are not dated
    assert row["n_orders"] == 3
    assert row["n_zero_good_qty"] == 1
    _assert_stats(row, "actual_run_min", {"n": 2, "median": 3.3})
    assert row["n_operations"] == 10
    assert _row(dated, RES_CD="INS-WC2")["n_orders"] == 1  # 15 Mar


def test_apply_filters_frames() -> None:
    routings, orders = timeagg.apply_filters(
        _routings(), _work_orders(), _items(), TimeFilters(item_groups=["PUMP"], report_to=date(2024, 1, 31))
    )
    assert routings.collect()["ITEM_CD"].unique().sort().to_list() == ["C", "D"]
    assert orders is not None
    assert orders.collect().height == 0  # PUMP items have no work order
    untouched, none = timeagg.apply_filters(_routings())
    assert untouched.collect().height == 22
    assert none is None


def test_filters_reject_invalid_values() -> None:
    with pytest.raises(ValueError, match="inside_flag"):
        TimeFilters(inside_flag="X")
    with pytest.raises(ValueError, match="REPORT_DT"):
        TimeFilters(report_from=date(2024, 5, 1), report_to=date(2024, 1, 1))
    with pytest.raises(ValueError, match="item master"):
        timeagg.aggregate_times(_routings(), filters=TimeFilters(item_groups=["SEAL"]))
    with pytest.raises(ValueError, match="item master"):
        timeagg.aggregate_times(_routings(), by=["ITEM_GRP1"])
    with pytest.raises(ValueError, match="Invalid group columns"):
        timeagg.aggregate_times(_routings(), by=["WC_CD"])
    with pytest.raises(ValueError, match="Invalid stats"):
        timeagg.aggregate_times(_routings(), stats=["mode"])
    assert TimeFilters(res_cds=[]).res_cds is None  # nothing chosen: no filter
    assert TimeFilters(res_cds="CNC-01").res_cds == ("CNC-01",)


# --- CLI table ---------------------------------------------------------------------------


def _views(routings: pl.DataFrame | None = None) -> Views:
    routings = _routings() if routings is None else routings
    return Views(items=_items(), routings=routings, active_routings=routings, work_orders=_work_orders())


def test_times_table_csv() -> None:
    text = timeagg.times_table(_views(), by="RES_CD", fmt="csv")
    table = pl.read_csv(io.StringIO(text))
    assert table["RES_CD"].to_list() == ["CNC-01", "INS-WC2", "MAN-01", "OUT-01"]
    assert table.columns == list(timeagg.aggregate_schema("RES_CD"))
    assert table["planned_setup_min_median"][0] == pytest.approx(19.0)


def test_times_table_json_nulls() -> None:
    routings = _routings().with_columns(
        pl.when(pl.col("ITEM_CD") == "G").then(math.inf).otherwise(pl.col("SETUP_TIME")).alias("SETUP_TIME")
    )
    text = timeagg.times_table(_views(routings), by="JOB_CD", fmt="json")
    records = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert [r["JOB_CD"] for r in records] == ["F61-1", "F62-1", "INS-1", "M10-1", "Q30-1"]
    manual = records[3]
    assert manual["planned_setup_min_sum"] is None  # infinite minutes written as null
    assert manual["planned_queue_min_median"] is None
    assert manual["n_orders"] == 0
    assert records[0]["run_ratio_actual_to_planned"] == pytest.approx(1.1)


def test_times_table_rejects_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="--by"):
        timeagg.times_table(_views(), by="INSIDE_FLAG", fmt="csv")
    with pytest.raises(ValueError, match="--format"):
        timeagg.times_table(_views(), by="RES_CD", fmt="xlsx")
