"""Hold-out evaluation: proposed routings of held-out items against their real ones, beside a PART_TYPE baseline.

Protocol
--------
Items with a routing are split once: a hold-out stratified by PART_TYPE (10 % by
default, at most 2,000 items, fixed seed) and the rest, which is indexed in a
second FAISS index that reuses the model's encoder and vectors. Every held-out
item is predicted from the other items only, in one batched call, so a held-out
item is never evidence for itself or for another held-out item.

The baseline proposes the most common routing (JOB_CD sequence) of the item's
PART_TYPE among the indexed items, then the next most common ones for the top-k
hit rates. Ties are broken by the JOB_CD sequence joined with "|", ascending.
Items whose PART_TYPE is null or not among the indexed items get the overall
ranking. The baseline's times for a routing come from the indexed items of that
PART_TYPE that have it (all indexed items with it, for the overall ranking).
Its lead time is the median of their lot-size-1 lead times. The run time of an
operation is the median of their run minutes per piece at that position.

Metrics (each also under ``baseline``), all means over the held-out items
unless stated otherwise, and ratios between 0 and 1:

- ``top1_accuracy``: the first candidate's JOB_CD sequence equals the real one.
  The real routing is the item's active routing.
- ``top3_hit_rate``, ``top5_hit_rate``: the real sequence is among the first k
  candidates. The model is asked for at least max(k) candidates.
- ``operation_precision``, ``operation_recall``, ``operation_f1``: the first
  candidate's JOB_CD multiset against the real one, per item, then averaged over
  items (macro average). The overlap counts a code min(predicted, real) times.
  An item without a candidate has precision, recall and F1 0.
- ``sequence_similarity``: 1 − normalised Levenshtein distance between the two
  JOB_CD sequences (rapidfuzz ``Levenshtein.normalized_similarity``, distance
  divided by the longer length). An item without a candidate scores 0.
- ``lead_time_within_15pct`` and ``lead_time_mape``: the first candidate's lead
  time for a lot of one piece against the real one, over the items whose real
  lead time is above 0 (``n_lead_time_items``). An item without a prediction
  counts as outside ±15 % and is left out of the MAPE, which is a fraction
  (0.12 means 12 %).
- ``run_time_mae_min``: mean absolute error of run minutes per piece, pooled
  over all matched operation pairs of all items (``n_run_time_pairs``). The
  n-th occurrence of a JOB_CD in the prediction matches the n-th occurrence of
  the same JOB_CD in the real routing. Real times are the planned ones
  (RUN_TIME / RUN_TIME_QTY). Predicted times may come from work-order actuals.
- ``inference_ms_p50``, ``inference_ms_p95``: one item per ``predict_items``
  call, timed on a sample of held-out items (model only).
- ``index_recall_at_10``: for an ``hnsw`` index, the share of the exact 10
  nearest neighbours that the approximate search returns (null for ``flat``).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import faiss
import numpy as np
import polars as pl
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from routing_core.config import Settings
from routing_core.errors import DataError
from routing_core.index import ItemIndex
from routing_core.predict import PredictionOptions, PredictionResult, Predictor
from routing_core.registry import ModelBundle
from routing_core.timeagg import lead_time_min

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float, str], None]

# Metric keys in display order, with the direction in which a value is better.
METRIC_DIRECTIONS: dict[str, str] = {
    "top1_accuracy": "higher",
    "top3_hit_rate": "higher",
    "top5_hit_rate": "higher",
    "operation_precision": "higher",
    "operation_recall": "higher",
    "operation_f1": "higher",
    "sequence_similarity": "higher",
    "lead_time_within_15pct": "higher",
    "lead_time_mape": "lower",
    "run_time_mae_min": "lower",
    "inference_ms_p50": "lower",
    "inference_ms_p95": "lower",
    "index_recall_at_10": "higher",
}
# Metrics drawn in the trend chart and reported by ``train`` on the command line.
HEADLINE_METRICS = ("top1_accuracy", "top5_hit_rate", "operation_f1", "sequence_similarity", "lead_time_within_15pct")
# Metrics that only the model has; the baseline reports them as null.
MODEL_ONLY_METRICS = ("inference_ms_p50", "inference_ms_p95", "index_recall_at_10")

# Group key of the baseline's overall ranking. A NUL character cannot occur in a
# cleaned PART_TYPE, so the key never collides with a real value.
_ALL_PART_TYPES = "\x00all"


@dataclass(frozen=True)
class EvaluationConfig:
    """Parameters of the hold-out evaluation.

    ``holdout_share`` of the items with a routing (default 0.10) are held out,
    at most ``max_holdout_items`` (default 2,000), stratified by PART_TYPE and
    drawn with ``seed``. Single-item latency is timed on up to
    ``latency_samples`` held-out items, and timing stops early once
    ``latency_budget_seconds`` have passed and at least ``min_latency_samples``
    calls were timed. ``recall_queries`` held-out items measure the recall of an
    ``hnsw`` index at ``recall_k``.
    """

    holdout_share: float = 0.10
    max_holdout_items: int = 2_000
    seed: int = 7
    hit_rate_k: tuple[int, ...] = (3, 5)
    lead_time_tolerance: float = 0.15
    latency_samples: int = 200
    min_latency_samples: int = 20
    latency_budget_seconds: float = 2.5
    recall_queries: int = 200
    recall_k: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_share < 1.0:
            raise ValueError(f"holdout_share must be between 0 and 1, got {self.holdout_share}")
        if self.max_holdout_items < 1:
            raise ValueError(f"max_holdout_items must be at least 1, got {self.max_holdout_items}")
        if not self.hit_rate_k or min(self.hit_rate_k) < 1:
            raise ValueError(f"hit_rate_k must list positive numbers, got {self.hit_rate_k}")
        if self.lead_time_tolerance < 0:
            raise ValueError(f"lead_time_tolerance must not be negative, got {self.lead_time_tolerance}")


@dataclass
class Evaluation:
    """Outcome of one evaluation: the metrics dict and the per-item scores of model and baseline."""

    metrics: dict[str, Any]
    per_item: pl.DataFrame  # ITEM_CD, PART_TYPE, real, model and baseline scores per held-out item
    holdout_item_codes: list[str]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def metric_key_for_k(k: int) -> str:
    """Return the metric name of the top-k hit rate, such as ``top5_hit_rate``."""
    return f"top{k}_hit_rate"


# --- hold-out ----------------------------------------------------------------------------


def choose_holdout(routed: pl.DataFrame, config: EvaluationConfig = EvaluationConfig()) -> list[str]:
    """Return the held-out ITEM_CDs, sorted, drawn from ``routed`` (ITEM_CD, PART_TYPE).

    The size is ``floor(holdout_share × n)`` capped at ``max_holdout_items``, at
    least 1 and at most n − 1, so the index always keeps an item. Each PART_TYPE
    (null is a stratum of its own) gets its proportional share, rounded down,
    and the items still missing go to the strata with the largest remainders
    (ties by stratum name). Within a stratum the items with the smallest random
    keys are chosen. The keys are drawn with ``seed`` over the items sorted by
    ITEM_CD, so the same items give the same hold-out whatever their order.
    """
    frame = (
        routed.select(pl.col("ITEM_CD"), pl.col("PART_TYPE").cast(pl.String).fill_null(""))
        .unique("ITEM_CD", keep="first")
        .sort("ITEM_CD")
    )
    n = frame.height
    if n < 2:
        return []
    target = min(int(n * config.holdout_share), config.max_holdout_items)
    target = min(max(target, 1), n - 1)

    keys = np.random.default_rng(config.seed).random(n)
    strata = (
        frame.group_by("PART_TYPE").len()
        .with_columns((pl.col("len") * target / n).alias("exact"))
        .with_columns(pl.col("exact").floor().cast(pl.Int64).alias("quota"))
        .with_columns((pl.col("exact") - pl.col("quota")).alias("remainder"))
        .sort(["remainder", "PART_TYPE"], descending=[True, False])
    )
    missing = target - int(strata.get_column("quota").sum())
    strata = strata.with_columns(
        (pl.col("quota") + (pl.int_range(pl.len()) < missing).cast(pl.Int64)).alias("quota")
    )
    chosen = (
        frame.with_columns(pl.Series("key", keys))
        .join(strata.select("PART_TYPE", "quota"), on="PART_TYPE", how="left")
        .with_columns(pl.col("key").rank("ordinal").over("PART_TYPE").alias("key_rank"))
        .filter(pl.col("key_rank") <= pl.col("quota"))
    )
    return sorted(chosen.get_column("ITEM_CD").to_list())


# --- the evaluation ------------------------------------------------------------------------


def evaluate_bundle(
    bundle: ModelBundle,
    settings: Settings,
    *,
    part_types: pl.DataFrame | None = None,
    holdout_item_codes: list[str] | None = None,
    config: EvaluationConfig = EvaluationConfig(),
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Evaluate ``bundle`` on a hold-out of its indexed items and return the metrics.

    ``part_types`` (ITEM_CD, PART_TYPE) gives the baseline's groups and the
    strata; by default they come from ``bundle.items``, and items without a
    PART_TYPE column form one group. ``holdout_item_codes`` replaces the random
    hold-out (each code must be an indexed item). The model's vectors are taken
    from ``bundle.extra["vectors"]`` when ``build_bundle`` left them there, else
    the items are encoded again. Raises DataError when fewer than two items have
    a routing or a given code is not an indexed item.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    report = progress or (lambda stage, fraction, message: None)

    routed = _routed_items(bundle, part_types)
    if holdout_item_codes is None:
        holdout = choose_holdout(routed, config)
    else:
        holdout = sorted({str(c) for c in holdout_item_codes})
        unknown = sorted(set(holdout) - set(routed.get_column("ITEM_CD").to_list()))
        if unknown:
            raise DataError(
                f"hold-out items are not indexed items with a routing: {', '.join(unknown[:10])}",
                rows=[{"ITEM_CD": c, "reason": "not an indexed item"} for c in unknown],
            )
    if not holdout or len(holdout) >= routed.height:
        raise DataError(f"evaluation needs at least two items with a routing and one left to index, got {routed.height}")
    holdout_frame = pl.DataFrame({"ITEM_CD": holdout}, schema={"ITEM_CD": pl.String})

    step = time.perf_counter()
    report("evaluate", 0.62, f"indexing {routed.height - len(holdout):,} items without the {len(holdout):,} held out")
    eval_bundle = _holdout_bundle(bundle, holdout_frame, settings)
    timings["index"] = time.perf_counter() - step

    step = time.perf_counter()
    report("evaluate", 0.66, f"predicting {len(holdout):,} held-out items")
    options = PredictionOptions(
        top_k=settings.top_k,
        max_candidates=max(settings.max_candidates, *config.hit_rate_k),
        lot_size=1.0,
        similarity_floor=settings.similarity_floor,
        min_actual_orders=settings.min_actual_orders,
    )
    predictor = Predictor(eval_bundle)
    result = predictor.predict_items(holdout, options)
    timings["predict"] = time.perf_counter() - step

    step = time.perf_counter()
    report("evaluate", 0.72, "comparing predictions with the real routings")
    truth = _truth(bundle, routed, holdout)
    model_candidates, model_operations = _model_predictions(result, holdout)
    baseline_candidates, baseline_operations = _baseline_predictions(
        eval_bundle, routed, truth, max(config.hit_rate_k)
    )
    model_metrics, model_items = score_predictions(truth, model_candidates, model_operations, config)
    baseline_metrics, baseline_items = score_predictions(truth, baseline_candidates, baseline_operations, config)
    timings["score"] = time.perf_counter() - step

    step = time.perf_counter()
    report("evaluate", 0.78, "timing single predictions")
    latency = _latency(predictor, holdout, options, config)
    timings["latency"] = time.perf_counter() - step
    recall = None
    if settings.index_kind == "hnsw":
        recall = _index_recall(eval_bundle, bundle, holdout, config)

    metrics: dict[str, Any] = {
        **model_metrics,
        **latency,
        "index_recall_at_10": recall,
        "baseline": {**baseline_metrics, **{key: None for key in MODEL_ONLY_METRICS}},
        "n_items": bundle.items.height,
        "n_indexed_items": bundle.index.size,
        "n_eval_items": len(holdout),
        "n_eval_index_items": eval_bundle.index.size,
        "evaluation": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
            "top_k": options.top_k,
            "max_candidates": options.max_candidates,
            "index_kind": settings.index_kind,
            "baseline_top_k": "PART_TYPE routings ranked by frequency",
            "operation_average": "macro (mean of per-item values)",
            "run_time_matching": "n-th occurrence of a JOB_CD",
        },
    }
    per_item = truth.select("ITEM_CD", "PART_TYPE", "real_signature", "real_lead_time_min").join(
        model_items.rename(lambda c: c if c == "ITEM_CD" else f"model_{c}"), on="ITEM_CD", how="left"
    ).join(baseline_items.rename(lambda c: c if c == "ITEM_CD" else f"baseline_{c}"), on="ITEM_CD", how="left")

    seconds = time.perf_counter() - started
    metrics["evaluation_seconds"] = round(seconds, 4)
    logger.info(
        "evaluated %d held-out items against %d indexed in %.2f s: top-1 %.3f (baseline %.3f), "
        "top-%d %.3f, operation F1 %.3f, sequence similarity %.3f, lead time ±15 %% %.3f, p95 %.1f ms",
        len(holdout), eval_bundle.index.size, seconds,
        _or_nan(metrics["top1_accuracy"]), _or_nan(baseline_metrics["top1_accuracy"]),
        max(config.hit_rate_k), _or_nan(metrics.get(metric_key_for_k(max(config.hit_rate_k)))),
        _or_nan(metrics["operation_f1"]), _or_nan(metrics["sequence_similarity"]),
        _or_nan(metrics["lead_time_within_15pct"]), _or_nan(metrics["inference_ms_p95"]),
    )
    return Evaluation(
        metrics=metrics, per_item=per_item, holdout_item_codes=holdout, seconds=seconds,
        timings={k: round(v, 4) for k, v in timings.items()},
    )


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


# --- inputs ----------------------------------------------------------------------------------


def _routed_items(bundle: ModelBundle, part_types: pl.DataFrame | None) -> pl.DataFrame:
    """Return the indexed items in index order: row, ITEM_CD, signature_id, PART_TYPE."""
    source = part_types if part_types is not None else bundle.items
    if "PART_TYPE" in source.columns:
        types = source.select("ITEM_CD", pl.col("PART_TYPE").cast(pl.String)).unique("ITEM_CD", keep="first")
    else:
        types = source.select("ITEM_CD", pl.lit(None, dtype=pl.String).alias("PART_TYPE")).unique("ITEM_CD", keep="first")
    return bundle.index_items.join(types, on="ITEM_CD", how="left", maintain_order="left")


def _item_vectors(bundle: ModelBundle) -> np.ndarray:
    """Return the vectors of the indexed items in index order."""
    vectors = bundle.extra.get("vectors")
    if vectors is not None and vectors.shape[0] == bundle.index.size:
        return vectors
    rows = bundle.index_items.select("ITEM_CD").join(bundle.items, on="ITEM_CD", how="left", maintain_order="left")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bundle.encoder.transform(rows)


def _holdout_bundle(bundle: ModelBundle, holdout: pl.DataFrame, settings: Settings) -> ModelBundle:
    """Return a bundle whose index and routings leave out the held-out items (ITEM_CD of ``holdout``)."""
    vectors = _item_vectors(bundle)
    indexed = bundle.index_items.join(holdout, on="ITEM_CD", how="anti", maintain_order="left")
    rows = indexed.get_column("row").to_numpy()
    index = ItemIndex.build(vectors[rows], indexed.get_column("ITEM_CD").to_list(), kind=settings.index_kind)
    return ModelBundle(
        version=f"{bundle.version}-holdout",
        encoder=bundle.encoder,
        index=index,
        index_items=indexed.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("row")),
        items=bundle.items,
        routings=bundle.routings.join(holdout, on="ITEM_CD", how="anti"),
        signatures=bundle.signatures,
        manifest={},
        extra={"vectors": vectors[rows]},
    )


def _lead_times(routings: pl.DataFrame) -> pl.DataFrame:
    """Return ITEM_CD, lead_time_min for a lot of one piece from routing-table rows (times in minutes)."""
    as_view = routings.select(
        "ITEM_CD",
        pl.lit("").alias("ROUT_NO"),
        pl.col("queue_min").alias("QUEUE_TIME"),
        pl.col("setup_min").alias("SETUP_TIME"),
        pl.col("run_min_per_piece").alias("RUN_TIME"),
        pl.lit(1.0).alias("RUN_TIME_QTY"),
        pl.col("wait_min").alias("WAIT_TIME"),
        pl.col("move_min").alias("MOVE_TIME"),
    )
    return lead_time_min(as_view, lot_size=1.0).select("ITEM_CD", "lead_time_min")


def _truth(bundle: ModelBundle, routed: pl.DataFrame, holdout: list[str]) -> pl.DataFrame:
    """Return one row per held-out item: query, ITEM_CD, PART_TYPE, real signature, lead time and operations."""
    queries = pl.DataFrame({"query": range(len(holdout)), "ITEM_CD": holdout}, schema={"query": pl.Int64, "ITEM_CD": pl.String})
    rows = bundle.routings.join(queries.select("ITEM_CD"), on="ITEM_CD", how="semi")
    operations = (
        rows.sort("ITEM_CD", "pos")
        .group_by("ITEM_CD", maintain_order=True)
        .agg(pl.col("JOB_CD").alias("real_job_cds"), pl.col("run_min_per_piece").alias("real_run_min"))
    )
    return (
        queries.join(routed.select("ITEM_CD", "signature_id", "PART_TYPE"), on="ITEM_CD", how="left")
        .rename({"signature_id": "real_signature_id"})
        .join(bundle.signatures.select(pl.col("signature_id").alias("real_signature_id"), pl.col("signature").alias("real_signature")),
              on="real_signature_id", how="left")
        .join(_lead_times(rows).rename({"lead_time_min": "real_lead_time_min"}), on="ITEM_CD", how="left")
        .join(operations, on="ITEM_CD", how="left")
        .sort("query")
    )


# --- predictions in a common shape --------------------------------------------------------
#
# candidates: query, rank, signature_id, signature, lead_time_min
# operations: query, pos, job_cd, run_min (of the rank-1 candidate only)


def _model_predictions(result: PredictionResult, holdout: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    candidates = result.candidates.select("query", "rank", "signature_id", "signature", "lead_time_min", "candidate_id")
    first = candidates.filter(pl.col("rank") == 1).select("query", "candidate_id")
    operations = result.operations.join(first, on=["query", "candidate_id"], how="semi").select("query", "pos", "job_cd", "run_min")
    return candidates.drop("candidate_id"), operations


def _baseline_predictions(
    eval_bundle: ModelBundle, routed: pl.DataFrame, truth: pl.DataFrame, max_k: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rank each PART_TYPE's routings among the indexed items and propose them to the held-out items."""
    indexed = (
        eval_bundle.index_items.select("ITEM_CD", "signature_id")
        .join(routed.select("ITEM_CD", "PART_TYPE"), on="ITEM_CD", how="left")
    )
    # Each indexed item supports its routing in its own PART_TYPE group and in the overall group.
    support = pl.concat([
        indexed.filter(pl.col("PART_TYPE").is_not_null()).rename({"PART_TYPE": "group"}),
        indexed.with_columns(pl.lit(_ALL_PART_TYPES).alias("group")).drop("PART_TYPE"),
    ], how="vertical_relaxed").select("group", "ITEM_CD", "signature_id")

    signature_text = eval_bundle.signatures.select(
        "signature_id", "signature", pl.col("signature").list.join("|").alias("_text")
    )
    ranked = (
        support.group_by("group", "signature_id").len("n_items")
        .join(signature_text, on="signature_id", how="left")
        .sort(["group", "n_items", "_text"], descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1).over("group").alias("rank"))
        .filter(pl.col("rank") <= max_k)
    )
    lead_times = _lead_times(eval_bundle.routings)
    group_lead = (
        support.join(ranked.select("group", "signature_id"), on=["group", "signature_id"], how="semi")
        .join(lead_times, on="ITEM_CD", how="left")
        .group_by("group", "signature_id").agg(pl.col("lead_time_min").median())
    )
    ranked = ranked.join(group_lead, on=["group", "signature_id"], how="left")

    known_groups = ranked.select(pl.col("group").unique())
    assigned = truth.select(
        "query",
        pl.when(pl.col("PART_TYPE").is_in(known_groups.get_column("group").implode()))
        .then(pl.col("PART_TYPE"))
        .otherwise(pl.lit(_ALL_PART_TYPES))
        .alias("group"),
    )
    candidates = assigned.join(ranked, on="group", how="inner").select(
        "query", "rank", "signature_id", "signature", "lead_time_min"
    ).sort("query", "rank")

    first = ranked.filter(pl.col("rank") == 1).select("group", "signature_id")
    group_operations = (
        support.join(first, on=["group", "signature_id"], how="semi")
        .join(eval_bundle.routings.select("ITEM_CD", "pos", "JOB_CD", "run_min_per_piece"), on="ITEM_CD", how="inner")
        .group_by("group", "pos")
        .agg(pl.col("JOB_CD").first().alias("job_cd"), pl.col("run_min_per_piece").median().alias("run_min"))
    )
    operations = assigned.join(group_operations, on="group", how="inner").select("query", "pos", "job_cd", "run_min")
    return candidates, operations


# --- scoring ------------------------------------------------------------------------------


def score_predictions(
    truth: pl.DataFrame, candidates: pl.DataFrame, operations: pl.DataFrame, config: EvaluationConfig
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Return (metrics, per-item scores) of one predictor's candidates against the truth.

    ``truth`` has query, ITEM_CD, real_signature_id, real_signature,
    real_lead_time_min, real_job_cds and real_run_min (lists in PROC_SEQ order).
    ``candidates`` has query, rank, signature_id, signature, lead_time_min;
    ``operations`` has query, pos, job_cd, run_min of each rank-1 candidate.
    """
    n = truth.height
    first_hit = (
        candidates.join(truth.select("query", "real_signature_id"), on="query", how="inner")
        .filter(pl.col("signature_id") == pl.col("real_signature_id"))
        .group_by("query").agg(pl.col("rank").min().alias("hit_rank"))
    )
    top = candidates.filter(pl.col("rank") == 1).select(
        "query", pl.col("signature").alias("predicted_signature"), pl.col("lead_time_min").alias("predicted_lead_time_min")
    )
    items = (
        truth.select("query", "ITEM_CD", "real_signature", "real_lead_time_min")
        .join(first_hit, on="query", how="left")
        .join(top, on="query", how="left")
        .with_columns(pl.col("predicted_signature").fill_null(pl.lit([], dtype=pl.List(pl.String))))
        .join(_operation_overlap(truth, top), on="query", how="left")
        .sort("query")
    )
    similarity = cpdist(
        items.get_column("predicted_signature").to_list(),
        items.get_column("real_signature").to_list(),
        scorer=Levenshtein.normalized_similarity,
        dtype=np.float64,
        workers=1,
    )
    tolerance = config.lead_time_tolerance
    predicted_lt, real_lt = pl.col("predicted_lead_time_min"), pl.col("real_lead_time_min")
    items = items.with_columns(
        pl.Series("sequence_similarity", similarity, dtype=pl.Float64),
        (pl.col("hit_rank") == 1).fill_null(False).alias("top1"),
        *[(pl.col("hit_rank") <= k).fill_null(False).alias(f"top{k}") for k in config.hit_rate_k],
        pl.when(real_lt > 0).then(((predicted_lt - real_lt).abs() <= tolerance * real_lt).fill_null(False)).alias("lead_time_within"),
        pl.when(real_lt > 0).then((predicted_lt - real_lt).abs() / real_lt).alias("lead_time_ape"),
    )
    run_errors = _run_time_errors(truth, operations)

    metrics: dict[str, Any] = {
        "top1_accuracy": _mean(items, "top1"),
        **{metric_key_for_k(k): _mean(items, f"top{k}") for k in config.hit_rate_k},
        "operation_precision": _mean(items, "operation_precision"),
        "operation_recall": _mean(items, "operation_recall"),
        "operation_f1": _mean(items, "operation_f1"),
        "sequence_similarity": _mean(items, "sequence_similarity"),
        "lead_time_within_15pct": _mean(items, "lead_time_within"),
        "lead_time_mape": _mean(items, "lead_time_ape"),
        "run_time_mae_min": float(run_errors.mean()) if run_errors.len() else None,
        "n_no_candidate_items": int(n - top.height),
        "n_lead_time_items": int(items.get_column("lead_time_within").is_not_null().sum()),
        "n_run_time_pairs": int(run_errors.len()),
    }
    per_item = items.select(
        "ITEM_CD", "predicted_signature", "predicted_lead_time_min", "hit_rank", "top1",
        "operation_precision", "operation_recall", "operation_f1", "sequence_similarity",
        "lead_time_within", "lead_time_ape",
    )
    return metrics, per_item


def _mean(frame: pl.DataFrame, column: str) -> float | None:
    """Return the mean of the non-null values of ``column`` as a float, or None when there are none."""
    values = frame.get_column(column).drop_nulls().cast(pl.Float64)
    return float(values.mean()) if values.len() else None


def _operation_overlap(truth: pl.DataFrame, top: pl.DataFrame) -> pl.DataFrame:
    """Return query, operation_precision, operation_recall, operation_f1 of the rank-1 JOB_CD multiset."""
    real = truth.select("query", pl.col("real_job_cds").alias("job_cd")).explode("job_cd").group_by("query", "job_cd").len("n_real")
    predicted = top.select("query", pl.col("predicted_signature").alias("job_cd")).explode("job_cd").drop_nulls("job_cd").group_by("query", "job_cd").len("n_predicted")
    overlap = (
        real.join(predicted, on=["query", "job_cd"], how="inner")
        .group_by("query").agg(pl.min_horizontal("n_real", "n_predicted").sum().alias("n_common"))
    )
    lengths = truth.select("query", pl.col("real_job_cds").list.len().alias("n_real")).join(
        top.select("query", pl.col("predicted_signature").list.len().alias("n_predicted")), on="query", how="left"
    )
    precision = pl.when(pl.col("n_predicted") > 0).then(pl.col("n_common") / pl.col("n_predicted")).otherwise(0.0)
    recall = pl.when(pl.col("n_real") > 0).then(pl.col("n_common") / pl.col("n_real")).otherwise(0.0)
    return (
        lengths.join(overlap, on="query", how="left")
        .with_columns(pl.col("n_common").fill_null(0), pl.col("n_predicted").fill_null(0))
        .with_columns(precision.alias("operation_precision"), recall.alias("operation_recall"))
        .with_columns(
            pl.when(pl.col("operation_precision") + pl.col("operation_recall") > 0)
            .then(2 * pl.col("operation_precision") * pl.col("operation_recall") / (pl.col("operation_precision") + pl.col("operation_recall")))
            .otherwise(0.0)
            .alias("operation_f1")
        )
        .select("query", "operation_precision", "operation_recall", "operation_f1")
    )


def _run_time_errors(truth: pl.DataFrame, operations: pl.DataFrame) -> pl.Series:
    """Return |predicted − real| run minutes per piece of operations matched by JOB_CD occurrence."""
    real = (
        truth.select("query", pl.col("real_job_cds").alias("job_cd"), pl.col("real_run_min").alias("real_run_min"))
        .explode("job_cd", "real_run_min")
        .with_columns(pl.int_range(pl.len()).over("query", "job_cd").alias("occurrence"))
    )
    predicted = operations.sort("query", "pos").with_columns(
        pl.int_range(pl.len()).over("query", "job_cd").alias("occurrence")
    )
    return (
        predicted.join(real, on=["query", "job_cd", "occurrence"], how="inner")
        .select((pl.col("run_min") - pl.col("real_run_min")).abs().alias("error"))
        .get_column("error")
        .drop_nulls()
    )


# --- latency and index recall ---------------------------------------------------------------


def _latency(predictor: Predictor, holdout: list[str], options: PredictionOptions, config: EvaluationConfig) -> dict[str, Any]:
    """Time single-item predictions of an evenly spaced sample of the held-out items."""
    n = min(config.latency_samples, len(holdout))
    if n == 0:
        return {"inference_ms_p50": None, "inference_ms_p95": None, "n_latency_samples": 0}
    sample = [holdout[int(i)] for i in np.linspace(0, len(holdout) - 1, n)]
    predictor.predict_items(sample[:1], options)  # warm-up: first calls start Polars' thread pool
    durations: list[float] = []
    budget_end = time.perf_counter() + config.latency_budget_seconds
    for code in sample:
        start = time.perf_counter()
        predictor.predict_items([code], options)
        durations.append((time.perf_counter() - start) * 1000.0)
        if len(durations) >= config.min_latency_samples and time.perf_counter() > budget_end:
            break
    values = np.asarray(durations)
    return {
        "inference_ms_p50": round(float(np.percentile(values, 50)), 3),
        "inference_ms_p95": round(float(np.percentile(values, 95)), 3),
        "n_latency_samples": len(durations),
    }


def _index_recall(eval_bundle: ModelBundle, bundle: ModelBundle, holdout: list[str], config: EvaluationConfig) -> float | None:
    """Return the mean share of the exact top-k neighbours that the approximate index finds."""
    vectors = eval_bundle.extra["vectors"]
    k = min(config.recall_k, eval_bundle.index.size)
    queries_codes = pl.DataFrame({"ITEM_CD": holdout[: config.recall_queries]})
    rows = queries_codes.join(bundle.index_items, on="ITEM_CD", how="inner", maintain_order="left").get_column("row").to_numpy()
    if k == 0 or rows.size == 0:
        return None
    queries = np.ascontiguousarray(_item_vectors(bundle)[rows])
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, exact_rows = exact.search(queries, k)
    _, approx_rows = eval_bundle.index.index.search(queries, k)
    found = (approx_rows[:, :, None] == exact_rows[:, None, :]).any(axis=1) & (exact_rows >= 0)
    return float(found.sum(axis=1).mean() / k)
