"""Routing prediction: neighbours → candidate routings with estimated times, lead time and explanations.

Candidates are the distinct JOB_CD sequences among the top-K similar items that
have a routing, each merged once. A candidate's score is the sum of its
supporting items' similarities. Per operation, times are similarity-weighted medians with a
p25–p75 spread over the supporting items, preferring work-order actuals where an
item has at least ``min_actual_orders`` of them. Codes that cannot be averaged
(resource, work centre, in-house flag, subcontractor) come from the most similar
supporting item. Everything runs as Polars expressions over all queries at once.
"""

from __future__ import annotations

import logging
import math
import time
import unicodedata
import warnings
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import polars as pl

from routing_core.config import Settings
from routing_core.errors import DataError
from routing_core.features import UnseenCategoryWarning
from routing_core.registry import ModelBundle
from routing_core.schema import NULL_MARKERS, ROUTING_TIME_COLUMNS, TIME_UNIT_TO_MINUTES
from routing_core.timeagg import MAX_LOT_SIZE, lead_time_expr

logger = logging.getLogger(__name__)

TIME_KINDS = ("setup", "run", "queue", "wait", "move")
# Two numbers are reported as matching when they differ by at most this share.
NUMBER_MATCH_TOLERANCE = 0.05
_MIN_WEIGHT = 1e-6
# Batches of at least this many queries use FAISS's BLAS (matrix product) search.
# faiss-cpu 1.15.1 switches to BLAS when queries × dimension reaches
# distance_compute_blas_threshold (default 128,000). With 109 dimensions a batch
# of 1,000 items therefore took the query-by-query loop, at about 7 ms per query
# against 284,000 items instead of about 0.9 ms with BLAS. One query is faster in
# the loop (6 ms against 34 ms with BLAS), and the two meet near 6 queries
# (measured on the 2-core development machine with one thread).
BLAS_MIN_QUERIES = 8


@dataclass(frozen=True)
class PredictionOptions:
    """Knobs of one prediction call."""

    top_k: int = 10
    max_candidates: int = 5
    lot_size: float = 1.0
    similarity_floor: float = 0.0
    min_actual_orders: int = 3

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> PredictionOptions:
        """Take defaults from settings; ``overrides`` that are None are ignored."""
        values = {
            "top_k": settings.top_k,
            "max_candidates": settings.max_candidates,
            "lot_size": settings.default_lot_size,
            "similarity_floor": settings.similarity_floor,
            "min_actual_orders": settings.min_actual_orders,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        options = cls(**values)
        if not math.isfinite(options.lot_size) or options.lot_size <= 0 or options.lot_size > MAX_LOT_SIZE:
            raise DataError(
                f"lot size must be greater than 0 and at most {MAX_LOT_SIZE:,} pieces, got {options.lot_size:g}"
            )
        if options.top_k < 1 or options.max_candidates < 1:
            raise DataError("top-K and the number of candidates must be at least 1")
        return options


@dataclass
class PredictionResult:
    """Predictions for one or more queries as flat frames, keyed by ``query`` (0-based)."""

    queries: pl.DataFrame  # query, item_cd, warnings (list[str])
    candidates: pl.DataFrame  # query, candidate_id, rank, score, signature_id, signature, n_support, lead_time_min
    operations: pl.DataFrame  # query, candidate_id, pos, proc_seq, job_cd, … times and spreads
    support: pl.DataFrame  # query, candidate_id, item_cd, item_nm, similarity, matches, differs
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Return one JSON-ready dict per query in the CLI's output schema."""
        operations = _group_rows(self.operations.sort("query", "candidate_id", "pos"), ("query", "candidate_id"))
        support = _group_rows(self.support.sort("query", "candidate_id", "similarity", descending=[False, False, True]), ("query", "candidate_id"))
        candidates = _group_rows(self.candidates.sort("query", "rank"), ("query",))
        output = []
        for query in self.queries.sort("query").iter_rows(named=True):
            items = []
            for candidate in candidates.get((query["query"],), []):
                key = (query["query"], candidate["candidate_id"])
                items.append({
                    "candidate_id": candidate["candidate_id"],
                    "rank": candidate["rank"],
                    "score": _round(candidate["score"]),
                    "signature": candidate["signature"],
                    "support": [
                        {
                            "item_cd": s["item_cd"],
                            "item_nm": s["item_nm"],
                            "similarity": _round(s["similarity"]),
                            "matches": s["matches"],
                            "differs": s["differs"],
                        }
                        for s in support.get(key, [])
                    ],
                    "operations": [_operation_dict(op) for op in operations.get(key, [])],
                    "lead_time_min": _round(candidate["lead_time_min"]),
                })
            output.append({"item_cd": query["item_cd"], "candidates": items, "warnings": query["warnings"]})
        return output


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _operation_dict(op: dict[str, Any]) -> dict[str, Any]:
    row = {
        "proc_seq": op["proc_seq"],
        "job_cd": op["job_cd"],
        "job_nm": op["job_nm"],
        "res_cd": op["res_cd"],
        "res_dis": op["res_dis"],
        "wc_cd": op["wc_cd"],
        "inside_flag": op["inside_flag"],
        "bp_cd": op["bp_cd"],
        "insp_flg": op["insp_flg"],
        "milestone_flg": op["milestone_flg"],
        "mfg_lt": _round(op["mfg_lt"]),
        "run_time_qty": 1,
        "time_source": op["time_source"],
    }
    for kind in TIME_KINDS:
        row[f"{kind}_min"] = _round(op[f"{kind}_min"])
    for kind in ("setup", "run"):
        row[f"{kind}_min_p25"] = _round(op[f"{kind}_min_p25"])
        row[f"{kind}_min_p75"] = _round(op[f"{kind}_min_p75"])
    return row


def _group_rows(frame: pl.DataFrame, keys: tuple[str, ...]) -> dict[tuple, list[dict[str, Any]]]:
    """Group a frame's rows by ``keys`` for output formatting (not for computation)."""
    grouped: dict[tuple, list[dict[str, Any]]] = {}
    for row in frame.iter_rows(named=True):
        grouped.setdefault(tuple(row[k] for k in keys), []).append(row)
    return grouped


def weighted_quantile(value: str, weight: str, q: float) -> pl.Expr:
    """Weighted quantile of ``value`` within a group: the smallest value whose cumulative weight reaches q."""
    valid = pl.col(value).is_not_null()
    values = pl.col(value).filter(valid)
    weights = pl.col(weight).filter(valid)
    cumulative = weights.sort_by(values).cum_sum()
    return values.sort_by(values).filter(cumulative >= q * weights.sum() - 1e-12).first()


class _CodeLookup:
    """Find the rows of codes in a code column by binary search instead of a dict of every code."""

    def __init__(self, codes: pl.Series) -> None:
        if codes.is_sorted():
            self._codes, self._rows = codes, None
        else:
            order = codes.arg_sort()
            self._codes, self._rows = codes.gather(order), order.to_numpy().astype(np.int64)

    def rows(self, wanted: list[str]) -> np.ndarray:
        """Return the row of each code (int64), -1 for a code that is not there."""
        if self._codes.len() == 0 or not wanted:
            return np.full(len(wanted), -1, dtype=np.int64)
        targets = pl.Series(wanted, dtype=pl.String)
        positions = self._codes.search_sorted(targets, side="left").to_numpy().astype(np.int64)
        positions = np.minimum(positions, self._codes.len() - 1)
        found = (self._codes.gather(positions) == targets).fill_null(False).to_numpy()
        rows = positions if self._rows is None else self._rows[positions]
        return np.where(found, rows, -1)


class Predictor:
    """Predict routings with a loaded ModelBundle. Holds lookup tables only; never mutates the bundle."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self._features = bundle.encoder.used_features_
        self._numbers = set(bundle.encoder.number_features_)
        self._items = _CodeLookup(bundle.items.get_column("ITEM_CD"))
        self._indexed = _CodeLookup(bundle.index_items.get_column("ITEM_CD"))
        self._signature_of_row = bundle.index_items.get_column("signature_id").to_numpy()
        self._routings, self._route_start, self._route_len = self._routing_offsets(bundle)
        self._item_attributes = bundle.items.select(
            pl.col("ITEM_CD").alias("item_cd"), pl.col("ITEM_NM").alias("item_nm"),
            *[pl.col(c).cast(pl.Float64 if c in self._numbers else pl.String, strict=False) for c in self._features],
        )
        encoder = bundle.encoder
        self._known_categories = (
            {name: np.asarray(cats, dtype=object) for name, cats in zip(encoder.category_features_, encoder.onehot_.categories_)}
            if encoder.onehot_ is not None else {}
        )

    @staticmethod
    def _routing_offsets(bundle: ModelBundle) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
        """Return routings sorted by item and position, and each index row's first routing row and length."""
        routings = bundle.routings
        runs = routings.get_column("ITEM_CD").rle().struct.unnest()
        if runs.height != runs.get_column("value").n_unique():
            # An item's operations are not contiguous: sort once, then count again.
            routings = routings.sort("ITEM_CD", "pos")
            runs = routings.get_column("ITEM_CD").rle().struct.unnest()
        runs = runs.with_columns((pl.col("len").cum_sum() - pl.col("len")).alias("start"))
        per_row = bundle.index_items.select("ITEM_CD").join(
            runs.rename({"value": "ITEM_CD"}), on="ITEM_CD", how="left", maintain_order="left"
        )
        start = per_row.get_column("start").fill_null(0).to_numpy().astype(np.int64)
        length = per_row.get_column("len").fill_null(0).to_numpy().astype(np.int64)
        return routings, start, length

    # --- public entry points --------------------------------------------------------

    def has_item(self, item_cd: str) -> bool:
        """Return whether ``item_cd`` is in the model's item master."""
        return bool(self._items.rows([item_cd])[0] >= 0)

    def predict_items(self, item_codes: list[str], options: PredictionOptions) -> PredictionResult:
        """Predict for existing items; an item's own routing is never evidence for itself."""
        codes = [unicodedata.normalize("NFKC", str(c)).strip() for c in item_codes]
        rows = self._items.rows(codes)
        missing = [code for code, row in zip(codes, rows) if row < 0]
        if missing:
            shown = ", ".join(missing[:10])
            raise DataError(
                f"item code not found in the item master: {shown}",
                rows=[{"ITEM_CD": m, "reason": "not found"} for m in missing],
            )
        found = self.bundle.items[rows.tolist()].with_row_index("query").with_columns(pl.col("query").cast(pl.Int64))
        return self._predict(found, item_codes=codes, options=options, report_missing=False)

    def predict_attributes(self, attributes: list[dict[str, Any]] | pl.DataFrame, options: PredictionOptions) -> PredictionResult:
        """Predict for new items given as attribute mappings (or a frame) of item-master columns."""
        frame = attributes if isinstance(attributes, pl.DataFrame) else pl.DataFrame(attributes, infer_schema_length=None)
        if frame.height == 0:
            raise DataError("no items to predict")
        if "ITEM_CD" not in frame.columns:
            frame = frame.with_columns(pl.format("NEW-{}", pl.int_range(1, pl.len() + 1)).alias("ITEM_CD"))
        frame = frame.with_row_index("query").with_columns(pl.col("query").cast(pl.Int64), pl.col("ITEM_CD").cast(pl.String))
        # A new item that reuses an existing code is excluded from its own neighbours too.
        return self._predict(frame, item_codes=frame.get_column("ITEM_CD").to_list(), options=options, report_missing=True)

    # --- the pipeline ---------------------------------------------------------------

    def _predict(
        self, queries: pl.DataFrame, item_codes: list[str], options: PredictionOptions, report_missing: bool
    ) -> PredictionResult:
        start = time.perf_counter()
        query_warnings = self._query_warnings(queries, report_missing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenCategoryWarning)
            vectors = self.bundle.encoder.transform(queries, warn_unseen=False)
        exclude = self._indexed.rows(item_codes)
        # The setting is global to the process, so it is set for this index's dimension before each search.
        faiss.cvar.distance_compute_blas_threshold = BLAS_MIN_QUERIES * self.bundle.index.index.d
        similarities, rows = self.bundle.index.search_rows(vectors, options.top_k, exclude_rows=exclude)

        neighbours = self._neighbour_frame(similarities, rows, options)
        candidates, support = self._candidates(neighbours, options)
        operations = self._operations(support, options)
        # Operation times are per piece here, so RUN_TIME_QTY is 1.
        lead_times = (
            operations.lazy()
            .select(
                "query", "candidate_id",
                pl.col("queue_min").alias("QUEUE_TIME"), pl.col("setup_min").alias("SETUP_TIME"),
                pl.col("run_min").alias("RUN_TIME"), pl.lit(1.0).alias("RUN_TIME_QTY"),
                pl.col("wait_min").alias("WAIT_TIME"), pl.col("move_min").alias("MOVE_TIME"),
            )
            .group_by("query", "candidate_id")
            .agg(lead_time_expr(options.lot_size).sum().alias("lead_time_min"))
        )
        candidates = candidates.lazy().join(lead_times, on=["query", "candidate_id"], how="left").sort("query", "rank").collect()
        support = self._explain(support, queries)

        has_candidates = np.zeros(len(item_codes), dtype=bool)
        has_candidates[candidates.get_column("query").to_numpy()] = True
        for q in np.flatnonzero(~has_candidates):
            query_warnings[q].append("no_similar_item")
        query_frame = pl.DataFrame(
            {"query": list(range(len(item_codes))), "item_cd": item_codes, "warnings": query_warnings},
            schema={"query": pl.Int64, "item_cd": pl.String, "warnings": pl.List(pl.String)},
        )
        seconds = time.perf_counter() - start
        logger.debug("predicted %d queries in %.3f s", len(item_codes), seconds)
        return PredictionResult(query_frame, candidates, operations, support, seconds=seconds)

    def _query_warnings(self, queries: pl.DataFrame, report_missing: bool) -> list[list[str]]:
        """Per query: unseen category values, missing attributes, and an item without routing.

        Partly missing attributes are reported only when ``report_missing`` is set
        (new items typed by a user); the item master is sparse by nature.
        """
        result: list[list[str]] = [[] for _ in range(queries.height)]
        present = [c for c in self._features if c in queries.columns]
        missing = np.full(queries.height, len(self._features) - len(present), dtype=np.int64)
        for name in present:
            missing += queries.get_column(name).is_null().to_numpy()
        for q in np.flatnonzero(missing == len(self._features)):
            result[q].append("all_attributes_missing")
        if report_missing:
            for q in np.flatnonzero((missing > 0) & (missing < len(self._features))):
                result[q].append(f"attributes_missing:{missing[q]}")
        for name, known in self._known_categories.items():
            if name not in queries.columns:
                continue
            values = queries.get_column(name).cast(pl.String).to_numpy()
            present_mask = values != None  # noqa: E711 (element-wise test on an object array)
            unseen = present_mask & ~np.isin(values, known)
            for q in np.flatnonzero(unseen):
                result[q].append(f"unseen_category:{name}={values[q]}")
        if "has_routing" in queries.columns:
            for q in np.flatnonzero(~queries.get_column("has_routing").fill_null(True).to_numpy()):
                result[q].append("item_has_no_routing")
        return result

    def _neighbour_frame(self, similarities: np.ndarray, rows: np.ndarray, options: PredictionOptions) -> pl.DataFrame:
        n_queries, k = rows.shape
        valid = (rows >= 0) & (similarities >= options.similarity_floor)
        kept_rows = rows[valid]
        return pl.DataFrame(
            {
                "query": np.repeat(np.arange(n_queries, dtype=np.int64), k)[valid.reshape(-1)],
                "neighbour_rank": np.tile(np.arange(k, dtype=np.int64), n_queries)[valid.reshape(-1)],
                "row": kept_rows.astype(np.int64),
                "item_cd": self.bundle.index.item_codes[kept_rows].tolist(),
                "similarity": similarities[valid].astype(np.float64),
                "signature_id": self._signature_of_row[kept_rows],
            },
            schema={
                "query": pl.Int64, "neighbour_rank": pl.Int64, "row": pl.Int64, "item_cd": pl.String,
                "similarity": pl.Float64, "signature_id": pl.Int32,
            },
        )

    def _candidates(self, neighbours: pl.DataFrame, options: PredictionOptions) -> tuple[pl.DataFrame, pl.DataFrame]:
        candidates = (
            neighbours.lazy()
            .group_by("query", "signature_id")
            .agg(
                pl.col("similarity").sum().alias("score"),
                pl.col("similarity").max().alias("best_similarity"),
                pl.len().alias("n_support"),
            )
            .sort(["query", "score", "best_similarity", "signature_id"], descending=[False, True, True, False])
            .with_columns(pl.int_range(1, pl.len() + 1).over("query").alias("rank"))
            .filter(pl.col("rank") <= options.max_candidates)
            .join(self.bundle.signatures.lazy().select("signature_id", "signature", "candidate_id"), on="signature_id", how="left")
            .select("query", "candidate_id", "rank", "score", "best_similarity", "n_support", "signature_id", "signature")
            .collect()
        )
        support = neighbours.join(
            candidates.select("query", "signature_id", "candidate_id"), on=["query", "signature_id"], how="inner", maintain_order="left"
        )
        return candidates, support

    def _operations(self, support: pl.DataFrame, options: PredictionOptions) -> pl.DataFrame:
        # Gather each supporting item's routing rows by offset: no join against the big table.
        support_rows = support.get_column("row").to_numpy()
        lengths = self._route_len[support_rows]
        owner = np.repeat(np.arange(support.height), lengths)
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        gathered = self._routings[self._route_start[support_rows][owner] + offsets]
        rows = pl.concat(
            [support.select("query", "candidate_id", "similarity")[owner], gathered], how="horizontal"
        )

        use_actual = pl.col("n_actual") >= options.min_actual_orders
        stats = [weighted_quantile(kind, "_w", 0.5).alias(f"{kind}_min") for kind in TIME_KINDS]
        for kind in ("setup", "run"):
            stats.append(weighted_quantile(kind, "_w", 0.25).alias(f"{kind}_min_p25"))
            stats.append(weighted_quantile(kind, "_w", 0.75).alias(f"{kind}_min_p75"))
        # Codes from the most similar supporting item.
        best = pl.col("similarity").arg_max()
        codes = [
            pl.col(src).get(best).alias(dst)
            for src, dst in [
                ("JOB_CD", "job_cd"), ("JOB_NM", "job_nm"), ("RES_CD", "res_cd"), ("RES_DIS", "res_dis"),
                ("WC_CD", "wc_cd"), ("INSIDE_FLAG", "inside_flag"), ("BP_CD", "bp_cd"), ("INSP_FLG", "insp_flg"),
                ("MILESTONE_FLG", "milestone_flg"), ("MFG_LT", "mfg_lt"),
            ]
        ]
        source = (
            pl.when(pl.col("_actual").all()).then(pl.lit("actual"))
            .when(pl.col("_actual").any()).then(pl.lit("mixed"))
            .otherwise(pl.lit("planned"))
            .alias("time_source")
        )
        return (
            rows.lazy()
            .with_columns(
                pl.max_horizontal(pl.col("similarity"), pl.lit(_MIN_WEIGHT)).alias("_w"),
                pl.when(use_actual & pl.col("actual_setup_min").is_not_null()).then("actual_setup_min").otherwise("setup_min").alias("setup"),
                pl.when(use_actual & pl.col("actual_run_min").is_not_null()).then("actual_run_min").otherwise("run_min_per_piece").alias("run"),
                pl.col("queue_min").alias("queue"),
                pl.col("wait_min").alias("wait"),
                pl.col("move_min").alias("move"),
                use_actual.alias("_actual"),
            )
            .group_by("query", "candidate_id", "pos")
            .agg(*codes, *stats, source, pl.len().alias("n_items"))
            .sort("query", "candidate_id", "pos")
            .with_columns(((pl.col("pos") + 1) * 10).cast(pl.Int64).alias("proc_seq"))
            .collect()
        )

    def _explain(self, support: pl.DataFrame, queries: pl.DataFrame) -> pl.DataFrame:
        """Add item_nm and the lists of matching and differing attributes to each supporting item."""
        features = self._features
        item_rows = self._items.rows(support.get_column("item_cd").to_list())
        theirs = self._item_attributes[item_rows.tolist()].drop("item_cd")
        mine = queries.select(
            *[
                (pl.col(c) if c in queries.columns else pl.lit(None))
                .cast(pl.Float64 if c in self._numbers else pl.String, strict=False)
                .alias(f"{c}__q")
                for c in features
            ]
        )[support.get_column("query").to_numpy()]
        joined = pl.concat([support, theirs, mine], how="horizontal")
        match_exprs, differ_exprs = [], []
        for c in features:
            query_value, item_value = pl.col(f"{c}__q"), pl.col(c)
            if c in self._numbers:
                same = (query_value - item_value).abs() <= NUMBER_MATCH_TOLERANCE * pl.max_horizontal(query_value.abs(), item_value.abs())
            else:
                same = query_value == item_value
            both = query_value.is_not_null() & item_value.is_not_null()
            match_exprs.append(pl.when(both & same).then(pl.lit(c)))
            differ_exprs.append(pl.when(both & ~same).then(pl.lit(c)))
        return joined.lazy().with_columns(
            pl.concat_list(match_exprs).list.drop_nulls().alias("matches"),
            pl.concat_list(differ_exprs).list.drop_nulls().alias("differs"),
        ).select("query", "candidate_id", "item_cd", "item_nm", "similarity", "neighbour_rank", "matches", "differs").collect()


def result_rows(result: PredictionResult) -> pl.DataFrame:
    """Flatten a result to one row per (item, candidate, operation), for CSV output."""
    return (
        result.queries.select("query", "item_cd")
        .join(result.candidates.select("query", "candidate_id", "rank", "score", "lead_time_min"), on="query", how="inner")
        .join(result.operations, on=["query", "candidate_id"], how="inner")
        .sort("query", "rank", "pos")
        .select(
            "item_cd", "candidate_id", "rank", "score", "lead_time_min", "proc_seq", "job_cd", "job_nm",
            "res_cd", "inside_flag", *[f"{k}_min" for k in TIME_KINDS], "time_source",
        )
    )


# --- lead time of a routing given as ERP rows ----------------------------------------



@dataclass(frozen=True)
class RoutingLeadTime:
    """Lead time of one routing: the serial sum in minutes and, apart from it, the subcontract days."""

    minutes: float | None
    subcontract_days: float


def routing_lead_time(operations: pl.DataFrame, lot_size: float = 1.0) -> RoutingLeadTime:
    """Return the lead time of routing rows with ERP columns for a lot of ``lot_size`` pieces.

    Each row's times are in its TIME_UNIT (empty means minutes), and RUN_TIME is
    for RUN_TIME_QTY pieces (empty means 1). ``minutes`` is the serial sum of
    QUEUE_TIME + SETUP_TIME + RUN_TIME × lot_size / RUN_TIME_QTY + WAIT_TIME +
    MOVE_TIME, the lead time that predictions report. ``subcontract_days`` is the
    sum of MFG_LT, the days of subcontracted operations, which ``minutes`` leaves
    out. Numbers may be text. ``minutes`` is None when there are no rows, a
    TIME_UNIT is unknown, a number cannot be read or is not finite, or
    RUN_TIME_QTY is not above 0 (``export.check_operations`` reports such rows).
    """
    present = set(operations.columns)

    def text(column: str) -> pl.Expr:
        value = pl.col(column).cast(pl.String).str.normalize("NFKC").str.strip_chars()
        return pl.when(value.is_in(sorted(NULL_MARKERS))).then(None).otherwise(value)

    def number(column: str) -> pl.Expr:
        if column not in present:
            return pl.lit(None, pl.Float64)
        return text(column).cast(pl.Float64, strict=False)

    def unreadable(column: str) -> pl.Expr:
        if column not in present:
            return pl.lit(False)
        value = number(column)
        return (text(column).is_not_null() & value.is_null()) | value.is_nan() | value.is_infinite()

    if "TIME_UNIT" in present:
        unit = text("TIME_UNIT").str.to_uppercase()
        factor = pl.when(unit.is_null()).then(1.0).otherwise(unit.replace_strict(TIME_UNIT_TO_MINUTES, default=None, return_dtype=pl.Float64))
    else:
        factor = pl.lit(1.0)
    number_columns = [*ROUTING_TIME_COLUMNS, "RUN_TIME_QTY", "MFG_LT"]
    bad_row = pl.any_horizontal(
        factor.is_null(), (number("RUN_TIME_QTY") <= 0).fill_null(False), *[unreadable(c) for c in number_columns]
    )
    rows = operations.lazy().select(
        *[(number(c) * factor).alias(c) for c in ROUTING_TIME_COLUMNS],
        number("RUN_TIME_QTY").alias("RUN_TIME_QTY"),
        number("MFG_LT").alias("MFG_LT"),
        bad_row.alias("_unreadable"),
    )
    summary = rows.select(
        lead_time_expr(lot_size).sum().alias("minutes"),
        pl.col("MFG_LT").sum().alias("subcontract_days"),
        pl.col("_unreadable").any().alias("unreadable"),
        pl.len().alias("n_rows"),
    ).collect().row(0, named=True)
    readable = summary["n_rows"] > 0 and not summary["unreadable"]
    return RoutingLeadTime(
        minutes=float(summary["minutes"]) if readable else None,
        subcontract_days=float(summary["subcontract_days"] or 0.0),
    )
