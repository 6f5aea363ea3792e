"""Hold-out evaluation on a hand-made data set whose metrics are worked out by hand below."""

from datetime import date

import polars as pl
import pytest

from routing_core.config import FeatureSpec, load_settings
from routing_core.errors import DataError
from routing_core.evaluate import EvaluationConfig, _holdout_bundle, choose_holdout, evaluate_bundle
from routing_core.schema import ITEM_VIEW, ROUTING_VIEW, WORK_ORDER_VIEW, clean_schema
from routing_core.train import build_bundle
from routing_core.validation import Views

# Two weighted categories and nothing else, so every similarity is one of
#   same PART_TYPE and material: (9 + 4) / 13 = 1
#   same PART_TYPE only:          9 / 13 ≈ 0.692
#   same material only:           4 / 13 ≈ 0.308
#   neither:                      0
# With a similarity floor of 0.5 an item's neighbours are exactly the indexed
# items of its PART_TYPE, and top-K 10 is more than any PART_TYPE has.
FEATURES = [
    FeatureSpec(name="PART_TYPE", kind="category", weight=3.0),
    FeatureSpec(name="ITEM_MATERIAL", kind="category", weight=2.0),
]
HOLDOUT = ["H1", "H2", "H3", "H4", "H5"]


def _frame(view: str, rows: list[dict]) -> pl.DataFrame:
    schema = clean_schema(view)
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def _routing(item: str, ops: list[tuple[str, float, float]]) -> list[dict]:
    """ops: (JOB_CD, SETUP_TIME, RUN_TIME per piece); queue, wait and move are 0, so lead time = Σ setup + run."""
    return [
        {
            "ITEM_CD": item, "ROUT_NO": "01", "PROC_SEQ": 10 * (i + 1), "JOB_CD": job, "JOB_NM": job,
            "RES_CD": f"RES-{job}", "INSIDE_FLAG": "Y", "TIME_UNIT": "M", "SETUP_TIME": setup, "RUN_TIME": run,
            "RUN_TIME_QTY": 1.0, "QUEUE_TIME": 0.0, "WAIT_TIME": 0.0, "MOVE_TIME": 0.0, "MAJOR_FLG": "Y",
            "VALID_FROM_DT": date(2001, 1, 1), "VALID_TO_DT": date(2999, 12, 31),
        }
        for i, (job, setup, run) in enumerate(ops)
    ]


# Routings of the indexed items (lead time for one piece in brackets):
S_A = [("G10", 30.0, 2.0), ("L20", 20.0, 4.0), ("Q30", 0.0, 1.0)]  # 57
S_B = [("G10", 30.0, 2.0), ("L20", 20.0, 4.0), ("P25", 5.0, 1.0), ("Q30", 0.0, 1.0)]  # 63
S_C = [("G10", 40.0, 3.0), ("Q30", 0.0, 1.0)]  # 44
S_D = [("T10", 40.0, 6.0), ("M20", 30.0, 3.0), ("Q30", 0.0, 1.0)]  # 80
S_E = [("T10", 40.0, 6.0), ("M20", 30.0, 3.0), ("M20", 10.0, 2.0), ("Q30", 0.0, 1.0)]  # 92


def _item(code: str, part_type: str, material: str) -> dict:
    return {"ITEM_CD": code, "ITEM_NM": code, "PART_TYPE": part_type, "ITEM_MATERIAL": material}


@pytest.fixture(scope="module")
def views() -> Views:
    items = _frame(ITEM_VIEW, [
        *[_item(f"F{i}", "FACE", "SiC") for i in (1, 2, 3, 4)],
        *[_item(f"F{i}", "FACE", "CARBON") for i in (5, 6, 7)],
        *[_item(f"M{i}", "METAL", "SUS") for i in (1, 2, 3)],
        _item("H1", "FACE", "SiC"),
        _item("H2", "FACE", "SiC"),
        _item("H3", "FACE", "CARBON"),
        _item("H4", "METAL", "SUS"),
        # SPRING and INCONEL occur once, so the encoder treats them as unknown
        # (weight 0): H5's vector is zero and no neighbour reaches the floor.
        _item("H5", "SPRING", "INCONEL"),
        # Bought-in items without routing: in the master, never in an index.
        _item("E1", "ELASTOMER", "FKM"),
        _item("E2", "ELASTOMER", "FKM"),
    ])
    routings = _frame(ROUTING_VIEW, [
        *_routing("F1", S_A), *_routing("F2", S_A), *_routing("F3", S_A),
        *_routing("F4", S_B),
        *_routing("F5", S_C), *_routing("F6", S_C), *_routing("F7", S_C),
        *_routing("M1", S_D), *_routing("M2", S_D),
        *_routing("M3", S_E),
        # Real routings of the held-out items:
        *_routing("H1", S_A),  # 57
        *_routing("H2", [("G10", 30.0, 2.5), ("L20", 20.0, 4.0), ("P25", 5.0, 1.0), ("Q30", 0.0, 1.0)]),  # S_B, 63.5
        *_routing("H3", [("G10", 40.0, 5.0), ("Q30", 0.0, 1.0)]),  # S_C, 46
        *_routing("H4", [("T10", 60.0, 6.0), ("M20", 30.0, 3.0), ("M20", 10.0, 4.0), ("Q30", 0.0, 1.0)]),  # S_E, 114
        *_routing("H5", [("W10", 10.0, 2.0), ("Q30", 0.0, 1.0)]),  # a sequence no other item has, 13
    ])
    work_orders = _frame(WORK_ORDER_VIEW, [])
    return Views(items=items, routings=routings, active_routings=routings, work_orders=work_orders)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load_settings(
        features=FEATURES, model_dir=tmp_path_factory.mktemp("models"),
        top_k=10, max_candidates=5, similarity_floor=0.5, index_kind="flat",
    )


@pytest.fixture(scope="module")
def bundle(views, settings):
    return build_bundle(views, settings)


@pytest.fixture(scope="module")
def evaluation(bundle, settings):
    return evaluate_bundle(bundle, settings, holdout_item_codes=HOLDOUT, config=EvaluationConfig(latency_samples=5, min_latency_samples=1))


# Candidates of the model (score = Σ similarity of the supporting neighbours):
#   H1, H2 (FACE/SiC): S_A 3 (F1–F3), S_C 3 × 9/13 ≈ 2.08 (F5–F7), S_B 1 (F4)
#   H3 (FACE/CARBON):  S_C 3, S_A 27/13 ≈ 2.08, S_B 9/13
#   H4 (METAL/SUS):    S_D 2 (M1, M2), S_E 1 (M3)
#   H5:                none
# The baseline ranks each PART_TYPE's routings among the indexed items by count:
#   FACE: S_A 3, S_C 3 (tie: "G10|L20|Q30" < "G10|Q30"), S_B 1; METAL: S_D 2, S_E 1;
#   H5's SPRING is not among them, so it gets the overall ranking S_A, S_C, S_D, S_B, S_E.
#
# Per item, model | baseline:
#   item  real  first proposal    hit rank   precision  recall     F1           similarity
#   H1    S_A   S_A | S_A         1 | 1      1 | 1      1 | 1      1 | 1        1 | 1
#   H2    S_B   S_A | S_A         3 | 3      1 | 1      3/4 | 3/4  6/7 | 6/7    3/4 | 3/4   (1 deletion of 4)
#   H3    S_C   S_C | S_A         1 | 2      1 | 2/3    1 | 1      1 | 4/5      1 | 2/3     (1 deletion of 3)
#   H4    S_E   S_D | S_D         2 | 2      1 | 1      3/4 | 3/4  6/7 | 6/7    3/4 | 3/4   (M20 once of twice)
#   H5    new   none | S_A        - | -      0 | 1/3    0 | 1/2    0 | 2/5      0 | 1/3     (Q30 common; 2 edits of 3)


def test_model_accuracy_metrics(evaluation):
    m = evaluation.metrics
    assert m["top1_accuracy"] == 2 / 5  # H1, H3
    assert m["top3_hit_rate"] == 4 / 5  # H1, H2, H3, H4
    assert m["top5_hit_rate"] == 4 / 5
    assert m["operation_precision"] == pytest.approx((1 + 1 + 1 + 1 + 0) / 5, abs=1e-12)
    assert m["operation_recall"] == pytest.approx((1 + 3 / 4 + 1 + 3 / 4 + 0) / 5, abs=1e-12)
    assert m["operation_f1"] == pytest.approx((1 + 6 / 7 + 1 + 6 / 7 + 0) / 5, abs=1e-12)
    assert m["sequence_similarity"] == pytest.approx((1 + 3 / 4 + 1 + 3 / 4 + 0) / 5, abs=1e-12)
    assert m["n_no_candidate_items"] == 1


def test_baseline_accuracy_metrics(evaluation):
    b = evaluation.metrics["baseline"]
    assert b["top1_accuracy"] == 1 / 5  # H1
    assert b["top3_hit_rate"] == 4 / 5  # H1, H2 (rank 3), H3 (rank 2), H4 (rank 2)
    assert b["top5_hit_rate"] == 4 / 5
    assert b["operation_precision"] == pytest.approx((1 + 1 + 2 / 3 + 1 + 1 / 3) / 5, abs=1e-12)
    assert b["operation_recall"] == pytest.approx((1 + 3 / 4 + 1 + 3 / 4 + 1 / 2) / 5, abs=1e-12)
    assert b["operation_f1"] == pytest.approx((1 + 6 / 7 + 4 / 5 + 6 / 7 + 2 / 5) / 5, abs=1e-12)
    assert b["sequence_similarity"] == pytest.approx((1 + 3 / 4 + 2 / 3 + 3 / 4 + 1 / 3) / 5, abs=1e-12)
    assert b["n_no_candidate_items"] == 0


# Lead times for one piece, real against proposed (within ±15 %?):
#   H1  57    model S_A 57 (yes)     baseline S_A 57 (yes)
#   H2  63.5  model S_A 57 (6.5 ≤ 9.525, yes)   baseline the same
#   H3  46    model S_C 44 (2 ≤ 6.9, yes)       baseline S_A 57 (11 > 6.9, no)
#   H4  114   model S_D 80 (34 > 17.1, no)      baseline S_D 80 (no)
#   H5  13    model none (no, left out of MAPE) baseline S_A 57 (44, no)
# The baseline's lead time of a routing is the median over the indexed items of
# the PART_TYPE that have it; here those items share their times.
def test_lead_time_metrics(evaluation):
    m, b = evaluation.metrics, evaluation.metrics["baseline"]
    assert m["lead_time_within_15pct"] == 3 / 5
    assert b["lead_time_within_15pct"] == 2 / 5
    assert m["lead_time_mape"] == pytest.approx((0 + 6.5 / 63.5 + 2 / 46 + 34 / 114) / 4, abs=1e-12)
    assert b["lead_time_mape"] == pytest.approx((0 + 6.5 / 63.5 + 11 / 46 + 34 / 114 + 44 / 13) / 5, abs=1e-12)
    assert m["n_lead_time_items"] == 5
    assert b["n_lead_time_items"] == 5


# Run minutes per piece, operations matched by the n-th occurrence of a JOB_CD:
#   model:    H1 G10 0, L20 0, Q30 0 · H2 G10 |2 − 2.5| = 0.5, L20 0, Q30 0 · H3 G10 |3 − 5| = 2, Q30 0
#             · H4 T10 0, first M20 |3 − 3| = 0, Q30 0 → 11 pairs, Σ 2.5
#   baseline: H1 3 pairs 0 · H2 0.5, 0, 0 · H3 G10 |2 − 5| = 3, Q30 0 · H4 3 pairs 0 · H5 Q30 0 → 12 pairs, Σ 3.5
def test_run_time_mae(evaluation):
    m, b = evaluation.metrics, evaluation.metrics["baseline"]
    assert m["n_run_time_pairs"] == 11
    assert m["run_time_mae_min"] == pytest.approx(2.5 / 11, abs=1e-12)
    assert b["n_run_time_pairs"] == 12
    assert b["run_time_mae_min"] == pytest.approx(3.5 / 12, abs=1e-12)


def test_counts_and_model_only_metrics(evaluation):
    m = evaluation.metrics
    assert m["n_items"] == 17
    assert m["n_indexed_items"] == 15
    assert m["n_eval_items"] == 5
    assert m["n_eval_index_items"] == 10
    assert m["index_recall_at_10"] is None  # exact index
    assert m["n_latency_samples"] == 5
    assert 0 < m["inference_ms_p50"] <= m["inference_ms_p95"]
    for key in ("inference_ms_p50", "inference_ms_p95", "index_recall_at_10"):
        assert evaluation.metrics["baseline"][key] is None


def test_per_item_scores(evaluation):
    rows = {r["ITEM_CD"]: r for r in evaluation.per_item.to_dicts()}
    assert rows["H3"]["model_predicted_signature"] == ["G10", "Q30"]
    assert rows["H3"]["baseline_predicted_signature"] == ["G10", "L20", "Q30"]
    assert rows["H2"]["model_hit_rank"] == 3
    assert rows["H5"]["model_predicted_signature"] == []
    assert rows["H5"]["model_hit_rank"] is None


def test_holdout_never_evidence(bundle, settings):
    held = pl.DataFrame({"ITEM_CD": HOLDOUT})
    holdout_bundle = _holdout_bundle(bundle, held, settings)
    indexed = set(holdout_bundle.index_items.get_column("ITEM_CD").to_list())
    assert indexed.isdisjoint(HOLDOUT)
    assert set(holdout_bundle.routings.get_column("ITEM_CD").to_list()).isdisjoint(HOLDOUT)
    assert holdout_bundle.index.size == 10
    # The model bundle itself is not changed.
    assert bundle.index.size == 15


def test_unknown_holdout_code_rejected(bundle, settings):
    with pytest.raises(DataError, match="E1"):
        evaluate_bundle(bundle, settings, holdout_item_codes=["H1", "E1"])


def test_hnsw_recall_reported(views, tmp_path):
    settings = load_settings(
        features=FEATURES, model_dir=tmp_path, top_k=10, similarity_floor=0.5, index_kind="hnsw",
    )
    result = evaluate_bundle(build_bundle(views, settings), settings, holdout_item_codes=HOLDOUT,
                             config=EvaluationConfig(latency_samples=2, min_latency_samples=1))
    # Ten indexed items and k = 10: HNSW visits them all, so it finds the exact neighbours.
    assert result.metrics["index_recall_at_10"] == 1.0
    assert result.metrics["top1_accuracy"] == 2 / 5


def test_holdout_stratified_by_part_type():
    routed = pl.DataFrame({
        "ITEM_CD": [f"I{i:03d}" for i in range(100)],
        "PART_TYPE": ["A"] * 60 + ["B"] * 30 + [None] * 10,
    })
    chosen = choose_holdout(routed, EvaluationConfig(holdout_share=0.1, seed=3))
    types = dict(zip(routed["ITEM_CD"], routed["PART_TYPE"]))
    counts = pl.Series([types[c] for c in chosen]).value_counts(sort=True)
    assert len(chosen) == 10
    assert dict(zip(counts[""].fill_null("null").to_list(), counts["count"].to_list())) == {"A": 6, "B": 3, "null": 1}


def test_holdout_cap_and_remainders():
    routed = pl.DataFrame({
        "ITEM_CD": [f"I{i:03d}" for i in range(100)],
        "PART_TYPE": ["A"] * 60 + ["B"] * 30 + [None] * 10,
    })
    # Cap 5: exact shares A 3, B 1.5, null 0.5 → floors 3, 1, 0; the one left goes to the
    # larger remainder, a tie of 0.5 broken by stratum name ("" for null sorts first).
    chosen = choose_holdout(routed, EvaluationConfig(holdout_share=0.1, max_holdout_items=5))
    types = dict(zip(routed["ITEM_CD"], routed["PART_TYPE"]))
    assert sorted(str(types[c]) for c in chosen) == ["A", "A", "A", "B", "None"]


def test_holdout_deterministic_whatever_row_order():
    routed = pl.DataFrame({"ITEM_CD": [f"I{i:04d}" for i in range(500)], "PART_TYPE": ["A", "B"] * 250})
    first = choose_holdout(routed)
    shuffled = choose_holdout(routed.sample(fraction=1.0, shuffle=True, seed=11))
    other_seed = choose_holdout(routed, EvaluationConfig(seed=8))
    assert first == shuffled
    assert len(first) == 50
    assert first != other_seed


def test_holdout_keeps_an_indexed_item():
    routed = pl.DataFrame({"ITEM_CD": ["X1", "X2"], "PART_TYPE": ["A", "A"]})
    assert len(choose_holdout(routed)) == 1
    assert choose_holdout(routed.head(1)) == []
