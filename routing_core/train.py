"""Training: build a model bundle (encoder, FAISS index, routing tables) from validated views."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from routing_core.config import Settings
from routing_core.features import ItemEncoder
from routing_core.index import ItemIndex
from routing_core.registry import ModelBundle, current_version, new_version_name, save_bundle
from routing_core.timeagg import operation_actuals
from routing_core.validation import Views

if TYPE_CHECKING:
    from routing_core.sources import LoadedData

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float, str], None]
"""Called with (stage, fraction done 0–1 of the whole run, message)."""

# Columns of the bundle's routing table; times in minutes, run time per piece.
ROUTING_TABLE_COLUMNS = [
    "ITEM_CD", "pos", "PROC_SEQ", "JOB_CD", "JOB_NM", "RES_CD", "RES_DIS", "WC_CD", "INSIDE_FLAG",
    "setup_min", "run_min_per_piece", "RUN_TIME_QTY", "queue_min", "wait_min", "move_min",
    "MFG_LT", "INSP_FLG", "MILESTONE_FLG", "BP_CD", "n_actual", "actual_setup_min", "actual_run_min",
]


@contextmanager
def timed(stage: str, timings: dict[str, float]) -> Iterator[None]:
    """Log the start and duration of a stage and record its seconds in ``timings``."""
    logger.info("stage %s: started", stage)
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(time.perf_counter() - start, 4)
        logger.info("stage %s: finished in %.2f s", stage, timings[stage])


def routing_table(views: Views, min_actual_orders: int) -> pl.DataFrame:
    """Return the active routings of items in the master, one row per operation, with actuals joined."""
    actuals = operation_actuals(views.work_orders, min_orders=min_actual_orders).select(
        "ITEM_CD", "PROC_SEQ", "JOB_CD", "n_actual", "actual_setup_min", "actual_run_min"
    )
    in_master = views.items.select("ITEM_CD")
    return (
        views.active_routings.join(in_master, on="ITEM_CD", how="semi")
        .sort("ITEM_CD", "PROC_SEQ")
        .with_columns(
            pl.int_range(pl.len()).over("ITEM_CD").cast(pl.Int32).alias("pos"),
            pl.col("SETUP_TIME").alias("setup_min"),
            (pl.col("RUN_TIME") / pl.col("RUN_TIME_QTY").fill_null(1.0)).alias("run_min_per_piece"),
            pl.col("QUEUE_TIME").alias("queue_min"),
            pl.col("WAIT_TIME").alias("wait_min"),
            pl.col("MOVE_TIME").alias("move_min"),
        )
        .join(actuals, on=["ITEM_CD", "PROC_SEQ", "JOB_CD"], how="left")
        .with_columns(pl.col("n_actual").fill_null(0))
        .select(ROUTING_TABLE_COLUMNS)
    )


def signature_table(routings: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (per-item signature ids, signatures): a signature is an item's JOB_CD sequence."""
    per_item = routings.group_by("ITEM_CD", maintain_order=True).agg(
        pl.col("JOB_CD").sort_by("pos").alias("signature")
    )
    signatures = (
        per_item.select("signature").unique(maintain_order=True)
        .with_row_index("signature_id")
        .with_columns(pl.col("signature_id").cast(pl.Int32), pl.col("signature").list.len().alias("n_ops"))
    )
    # The candidate id names the JOB_CD sequence, so a sequence has the same id in
    # every prediction of this model and two candidates never share one.
    candidate_ids = [
        "R-" + hashlib.sha1("|".join(seq).encode("utf-8")).hexdigest()[:12]
        for seq in signatures.get_column("signature").to_list()
    ]
    signatures = signatures.with_columns(pl.Series("candidate_id", candidate_ids, dtype=pl.String))
    item_signatures = per_item.join(signatures, on="signature", how="left").select("ITEM_CD", "signature_id")
    return item_signatures, signatures


def build_bundle(
    views: Views,
    settings: Settings,
    *,
    index_item_codes: pl.Series | None = None,
    timings: dict[str, float] | None = None,
    progress: ProgressCallback | None = None,
) -> ModelBundle:
    """Fit the encoder and build the index over items with a routing.

    ``index_item_codes`` restricts the index to a subset (the evaluation
    hold-out uses it); the encoder is always fitted on the whole item master,
    which holds no routing information.
    """
    timings = timings if timings is not None else {}
    report = progress or (lambda stage, fraction, message: None)

    with timed("encode", timings):
        report("encode", 0.3, "encoding item attributes")
        feature_names = [f.name for f in settings.features if f.name in views.items.columns]
        items = views.items.select("ITEM_CD", "ITEM_NM", *[c for c in feature_names if c not in ("ITEM_CD", "ITEM_NM")])
        encoder = ItemEncoder(features=list(settings.features)).fit(items)
        routings = routing_table(views, settings.min_actual_orders)
        item_signatures, signatures = signature_table(routings)
        routed = items.join(item_signatures, on="ITEM_CD", how="inner")
        if index_item_codes is not None:
            routed = routed.join(pl.DataFrame({"ITEM_CD": index_item_codes}), on="ITEM_CD", how="semi")
        vectors = encoder.transform(routed)

    with timed("index", timings):
        report("index", 0.5, f"indexing {routed.height:,} items")
        index = ItemIndex.build(vectors, routed.get_column("ITEM_CD").to_list(), kind=settings.index_kind)
        index_items = routed.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), "ITEM_CD", "signature_id"
        )
        items = items.with_columns(pl.col("ITEM_CD").is_in(item_signatures.get_column("ITEM_CD").implode()).alias("has_routing"))
        indexed_routings = routings.join(index_items.select("ITEM_CD"), on="ITEM_CD", how="semi")

    return ModelBundle(
        version=new_version_name(),
        encoder=encoder,
        index=index,
        index_items=index_items,
        items=items,
        routings=indexed_routings,
        signatures=signatures,
        manifest={},
    )


@dataclass
class TrainResult:
    """Outcome of one training run."""

    version: str
    path: Path
    timings: dict[str, float]
    metrics: dict[str, Any] | None
    n_items: int
    n_indexed_items: int
    promoted: bool
    data_fingerprint: str

    def summary(self) -> dict[str, Any]:
        """Return the headline figures as a JSON-ready dict."""
        headline = {}
        if self.metrics:
            for key in ("top1_accuracy", "top_k_hit_rate", "operation_f1", "sequence_similarity", "lead_time_within_15pct"):
                if key in self.metrics:
                    headline[key] = self.metrics[key]
        return {
            "version": self.version,
            "promoted": self.promoted,
            "n_items": self.n_items,
            "n_indexed_items": self.n_indexed_items,
            "data_fingerprint": self.data_fingerprint,
            "seconds": self.timings,
            "metrics": headline,
        }


def train_and_save(
    settings: Settings,
    *,
    promote: bool = True,
    progress: ProgressCallback | None = None,
    loaded: LoadedData | None = None,
) -> TrainResult:
    """Run the stages load, validate, encode, index, save and return the new version."""
    from routing_core.sources import load_views

    report = progress or (lambda stage, fraction, message: None)
    timings: dict[str, float] = {}
    with timed("total", timings):
        if loaded is None:
            with timed("load", timings):
                report("load", 0.05, "loading data")
                loaded = load_views(settings)
        bundle = build_bundle(loaded.views, settings, timings=timings, progress=report)
        with timed("save", timings):
            report("save", 0.95, "saving model")
            path = save_bundle(
                bundle, settings.model_dir, data_fingerprint=loaded.fingerprint, promote=promote,
                extra_manifest={"source": loaded.source_description, "timings": timings},
            )
    report("done", 1.0, f"model {bundle.version} saved")
    return TrainResult(
        version=bundle.version,
        path=path,
        timings=timings,
        metrics=None,
        n_items=bundle.items.height,
        n_indexed_items=bundle.index.size,
        promoted=promote,
        data_fingerprint=loaded.fingerprint,
    )


def ensure_model(settings: Settings, progress: ProgressCallback | None = None) -> str:
    """Return the current model version, training a first one when there is none."""
    version = current_version(settings.model_dir)
    if version is not None:
        return version
    logger.info("no model in %s: training the first one", settings.model_dir)
    return train_and_save(settings, progress=progress).version
