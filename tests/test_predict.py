"""Prediction on a hand-made data set: candidates, self-exclusion, time estimates, lead time."""

from datetime import date

import polars as pl
import pytest

from routing_core.config import FeatureSpec, load_settings
from routing_core.predict import PredictionOptions, Predictor
from routing_core.schema import ITEM_VIEW, ROUTING_VIEW, WORK_ORDER_VIEW, clean_schema
from routing_core.train import build_bundle
from routing_core.validation import Views

FEATURES = [
    FeatureSpec(name="PART_TYPE", kind="category", weight=3.0),
    FeatureSpec(name="ITEM_MATERIAL", kind="category", weight=2.0),
    FeatureSpec(name="OUTDIAMETER", kind="number", weight=1.0),
]


def _frame(view: str, rows: list[dict]) -> pl.DataFrame:
    schema = clean_schema(view)
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def _routing(item: str, ops: list[tuple[int, str, float, float]]) -> list[dict]:
    """ops: (PROC_SEQ, JOB_CD, SETUP_TIME, RUN_TIME); queue 100, wait 50, move 10 minutes each."""
    return [
        {
            "ITEM_CD": item, "ROUT_NO": "01", "PROC_SEQ": seq, "JOB_CD": job, "JOB_NM": f"작업 {job}",
            "RES_CD": f"RES-{job}", "INSIDE_FLAG": "Y", "TIME_UNIT": "M", "SETUP_TIME": setup, "RUN_TIME": run,
            "RUN_TIME_QTY": 1.0, "QUEUE_TIME": 100.0, "WAIT_TIME": 50.0, "MOVE_TIME": 10.0, "MAJOR_FLG": "Y",
            "VALID_FROM_DT": date(2001, 1, 1), "VALID_TO_DT": date(2999, 12, 31),
        }
        for seq, job, setup, run in ops
    ]


FACE_OPS = [(10, "G10", 30.0, 2.0), (20, "L20", 20.0, 4.0), (30, "Q30", 0.0, 1.0)]


@pytest.fixture(scope="module")
def views() -> Views:
    items = _frame(ITEM_VIEW, [
        {"ITEM_CD": "A1", "ITEM_NM": "씰 페이스 A1", "PART_TYPE": "FACE", "ITEM_MATERIAL": "SiC", "OUTDIAMETER": 50.0},
        {"ITEM_CD": "A2", "ITEM_NM": "씰 페이스 A2", "PART_TYPE": "FACE", "ITEM_MATERIAL": "SiC", "OUTDIAMETER": 50.0},
        {"ITEM_CD": "A3", "ITEM_NM": "씰 페이스 A3", "PART_TYPE": "FACE", "ITEM_MATERIAL": "SiC", "OUTDIAMETER": 52.0},
        {"ITEM_CD": "B1", "ITEM_NM": "슬리브 B1", "PART_TYPE": "METAL", "ITEM_MATERIAL": "SUS316", "OUTDIAMETER": 80.0},
        {"ITEM_CD": "B2", "ITEM_NM": "슬리브 B2", "PART_TYPE": "METAL", "ITEM_MATERIAL": "SUS316", "OUTDIAMETER": 82.0},
        {"ITEM_CD": "E1", "ITEM_NM": "오링 E1", "PART_TYPE": "ELASTOMER", "ITEM_MATERIAL": "FKM", "OUTDIAMETER": 50.0},
    ])
    routings = _frame(ROUTING_VIEW, [
        *_routing("A1", FACE_OPS),
        *_routing("A2", FACE_OPS),
        *_routing("A3", [(10, "G10", 30.0, 2.0), (20, "L20", 20.0, 4.0), (25, "P25", 5.0, 1.0), (30, "Q30", 0.0, 1.0)]),
        *_routing("B1", [(10, "T10", 40.0, 6.0), (20, "M20", 30.0, 3.0), (30, "Q30", 0.0, 1.0)]),
        *_routing("B2", [(10, "T10", 40.0, 6.0), (20, "M20", 30.0, 3.0), (30, "Q30", 0.0, 1.0)]),
    ])
    # A2's grinding step has three work orders of 1 h for 10 good pieces: 6 min per piece, setup 0.5 h.
    work_orders = _frame(WORK_ORDER_VIEW, [
        {"ITEM_CD": "A2", "ROUT_NO": "01", "PROC_SEQ": 10, "JOB_CD": "G10", "SETUP_HOURS": 0.5,
         "MACH_WORKED_HOURS": 1.0, "ORDER_QTY": 12.0, "BAD_QTY": 2.0, "REPORT_DT": date(2026, 1, d)}
        for d in (1, 2, 3)
    ])
    return Views(items=items, routings=routings, active_routings=routings, work_orders=work_orders)


@pytest.fixture(scope="module")
def predictor(views, tmp_path_factory) -> Predictor:
    settings = load_settings(features=FEATURES, model_dir=tmp_path_factory.mktemp("models"))
    return Predictor(build_bundle(views, settings))


def _options(**kw) -> PredictionOptions:
    base = dict(top_k=10, max_candidates=5, lot_size=1.0, similarity_floor=-1.0, min_actual_orders=3)
    return PredictionOptions(**{**base, **kw})


def test_own_routing_never_evidence(predictor):
    result = predictor.predict_items(["A1"], _options())
    assert "A1" not in result.support.get_column("item_cd").to_list()


def test_top_candidate_is_face_sequence(predictor):
    out = predictor.predict_items(["A1"], _options()).to_dicts()[0]
    assert out["item_cd"] == "A1"
    assert out["candidates"][0]["signature"] == ["G10", "L20", "Q30"]
    assert [s["item_cd"] for s in out["candidates"][0]["support"]] == ["A2"]


def test_candidates_merged_once_with_unique_ids(predictor):
    result = predictor.predict_items(["A3", "B1", "E1"], _options())
    per_query = result.candidates.group_by("query").agg(
        pl.col("candidate_id").n_unique().alias("ids"), pl.len().alias("rows"), pl.col("signature_id").n_unique().alias("sigs")
    )
    assert (per_query["ids"] == per_query["rows"]).all()
    assert (per_query["sigs"] == per_query["rows"]).all()


def test_score_is_summed_similarity(predictor):
    result = predictor.predict_items(["A3"], _options())
    summed = result.support.group_by("candidate_id").agg(pl.col("similarity").sum())
    joined = result.candidates.join(summed, on="candidate_id")
    assert joined["score"].to_list() == pytest.approx(joined["similarity"].to_list())
    top = result.candidates.sort("rank").row(0, named=True)
    assert top["signature"] == ["G10", "L20", "Q30"]
    assert top["n_support"] == 2


def test_actuals_preferred_with_three_orders(predictor):
    result = predictor.predict_items(["A1"], _options(top_k=1))
    grinding = result.operations.filter(pl.col("job_cd") == "G10").row(0, named=True)
    assert grinding["run_min"] == pytest.approx(6.0)  # 1 h × 60 / (12 − 2)
    assert grinding["setup_min"] == pytest.approx(30.0)  # 0.5 h × 60
    assert grinding["time_source"] == "actual"


def test_planned_times_below_three_orders(predictor):
    result = predictor.predict_items(["A1"], _options(top_k=1, min_actual_orders=4))
    grinding = result.operations.filter(pl.col("job_cd") == "G10").row(0, named=True)
    assert grinding["run_min"] == pytest.approx(2.0)
    assert grinding["time_source"] == "planned"


def test_lead_time_for_lot_size(predictor):
    # B2 alone supports B1: per operation queue 100 + wait 50 + move 10 = 160,
    # setups 40 + 30 + 0, runs 6 + 3 + 1 per piece: 3 × 160 + 70 + 10 × Q.
    for lot, expected in [(1.0, 560.0), (25.0, 800.0)]:
        out = predictor.predict_items(["B1"], _options(top_k=1, lot_size=lot)).to_dicts()[0]
        assert out["candidates"][0]["lead_time_min"] == pytest.approx(expected)


def test_operations_numbered_in_tens(predictor):
    out = predictor.predict_items(["A3"], _options()).to_dicts()[0]
    seqs = [op["proc_seq"] for op in out["candidates"][0]["operations"]]
    assert seqs == [10, 20, 30]


def test_item_without_routing_can_be_queried(predictor):
    out = predictor.predict_items(["E1"], _options()).to_dicts()[0]
    assert "item_has_no_routing" in out["warnings"]
    assert out["candidates"]


def test_unknown_item_code_is_a_data_error(predictor):
    from routing_core.errors import DataError

    with pytest.raises(DataError, match="NOPE"):
        predictor.predict_items(["NOPE"], _options())


def test_new_item_attributes(predictor):
    out = predictor.predict_attributes([{"PART_TYPE": "METAL", "ITEM_MATERIAL": "SUS316", "OUTDIAMETER": 81.0}], _options()).to_dicts()[0]
    assert out["candidates"][0]["signature"] == ["T10", "M20", "Q30"]
    support = out["candidates"][0]["support"][0]
    assert "PART_TYPE" in support["matches"]
    assert "OUTDIAMETER" in support["matches"]


def test_new_item_unseen_category_warns(predictor):
    out = predictor.predict_attributes([{"PART_TYPE": "FACE", "ITEM_MATERIAL": "다이아몬드"}], _options()).to_dicts()[0]
    assert "unseen_category:ITEM_MATERIAL=다이아몬드" in out["warnings"]
    assert out["candidates"]


def test_all_missing_new_item(predictor):
    out = predictor.predict_attributes([{}], _options()).to_dicts()[0]
    assert "all_attributes_missing" in out["warnings"]


def test_k_larger_than_index(predictor):
    out = predictor.predict_items(["A1"], _options(top_k=500)).to_dicts()[0]
    supporters = {s["item_cd"] for c in out["candidates"] for s in c["support"]}
    assert supporters == {"A2", "A3", "B1", "B2"}


def test_similarity_floor_can_leave_nothing(predictor):
    out = predictor.predict_items(["E1"], _options(similarity_floor=0.9999)).to_dicts()[0]
    assert out["candidates"] == []
    assert "no_similar_item" in out["warnings"]


def test_batch_matches_single(predictor):
    batch = predictor.predict_items(["A1", "B1"], _options()).to_dicts()
    single = predictor.predict_items(["B1"], _options()).to_dicts()[0]
    # Batched BLAS may differ from a single query in the last float bits.
    assert [c["signature"] for c in batch[1]["candidates"]] == [c["signature"] for c in single["candidates"]]
    assert [c["score"] for c in batch[1]["candidates"]] == pytest.approx([c["score"] for c in single["candidates"]], abs=1e-3)
    assert [c["lead_time_min"] for c in batch[1]["candidates"]] == pytest.approx([c["lead_time_min"] for c in single["candidates"]])


def test_code_lookup_sorted_and_unsorted():
    from routing_core.predict import _CodeLookup

    for codes in (["A1", "A2", "B1"], ["B1", "A1", "A2"]):
        lookup = _CodeLookup(pl.Series(codes))
        rows = lookup.rows(["A2", "NOPE", "B1", "0"]).tolist()
        assert rows == [codes.index("A2"), -1, codes.index("B1"), -1]


def _erp_rows(**columns) -> pl.DataFrame:
    base = {
        "TIME_UNIT": ["M", "H", None], "SETUP_TIME": [10.0, 0.5, None], "RUN_TIME": [2.0, 0.1, 1.0],
        "RUN_TIME_QTY": [1.0, 2.0, None], "QUEUE_TIME": [5.0, None, 0.0], "WAIT_TIME": [1.0, 0.0, 0.0],
        "MOVE_TIME": [0.0, 0.0, 0.0], "MFG_LT": [None, 9.0, None],
    }
    return pl.DataFrame({**base, **columns}, strict=False)


def test_routing_lead_time_units_and_lot():
    from routing_core.predict import routing_lead_time

    # Row 1 in minutes: 5 + 10 + 2 × 10 + 1 = 36. Row 2 in hours: setup 30, run 6 min
    # for 2 pieces so 3 × 10 = 30: 60. Row 3, empty unit and quantity: 1 × 10 = 10.
    lead = routing_lead_time(_erp_rows(), lot_size=10)
    assert lead.minutes == pytest.approx(106.0)
    assert lead.subcontract_days == pytest.approx(9.0)


def test_routing_lead_time_reads_text_numbers():
    from routing_core.predict import routing_lead_time

    lead = routing_lead_time(_erp_rows().cast(pl.String), lot_size=10)
    assert lead.minutes == pytest.approx(106.0)
    assert lead.subcontract_days == pytest.approx(9.0)


@pytest.mark.parametrize("column, value", [
    ("TIME_UNIT", "DAY"), ("SETUP_TIME", "ten"), ("RUN_TIME_QTY", "0"), ("MOVE_TIME", "inf"),
])
def test_routing_lead_time_unreadable_row(column, value):
    from routing_core.predict import routing_lead_time

    rows = _erp_rows().cast(pl.String).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )
    lead = routing_lead_time(rows, lot_size=10)
    assert lead.minutes is None
    assert lead.subcontract_days == pytest.approx(9.0)


def test_routing_lead_time_without_rows():
    from routing_core.predict import routing_lead_time

    lead = routing_lead_time(_erp_rows().head(0))
    assert lead.minutes is None
    assert lead.subcontract_days == 0.0


def test_routing_lead_time_equals_candidate(predictor):
    from routing_core.export import operations_from_result
    from routing_core.predict import routing_lead_time

    result = predictor.predict_items(["B1", "A1"], _options(lot_size=25.0))
    for candidate in result.candidates.iter_rows(named=True):
        rows = operations_from_result(result, candidate["query"], candidate["candidate_id"])
        lead = routing_lead_time(rows, lot_size=25.0)
        assert lead.minutes == pytest.approx(candidate["lead_time_min"])
        assert lead.subcontract_days == 0.0
