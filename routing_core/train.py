"""Training: build a model bundle (encoder, FAISS index, routing tables), evaluate it and save it as a version.

A training run has the stages load, validate, encode, index, evaluate and save,
reports progress through a callback and logs each stage's duration. One
training runs at a time per model folder (an ``fcntl.flock`` lock file).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from routing_core.config import Settings
from routing_core.errors import DataError, TrainingInProgressError
from routing_core.evaluate import HEADLINE_METRICS, EvaluationConfig, evaluate_bundle
from routing_core.features import ItemEncoder
from routing_core.index import ItemIndex
from routing_core.registry import (
    MANIFEST,
    ModelBundle,
    current_version,
    library_versions,
    new_version_name,
    save_bundle,
    set_current,
    write_metrics,
)
from routing_core.timeagg import operation_actuals
from routing_core.validation import Views

if TYPE_CHECKING:
    from routing_core.sources import LoadedData

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float, str], None]
"""Called with (stage, fraction done 0–1 of the whole run, message)."""

STAGES = ("load", "validate", "encode", "index", "evaluate", "save")
LOCK_FILE = ".training.lock"
LOCK_READ_RETRIES = 25
SAMPLE_REPORT_FILE = "sample_report.json"
# Test hook: "<stage>[:seconds]" makes a training sleep before that stage (or
# before "promote"), so a test can kill it there. Unset in normal use.
TEST_PAUSE_ENV = "ROUTING_TEST_PAUSE_AT"

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
    active = views.active_routings
    # Validated views already keep only items of the master, sorted by ITEM_CD and
    # PROC_SEQ. Checking that is cheaper than a join and a sort of every row.
    routed_codes = active.get_column("ITEM_CD").unique()
    if not routed_codes.is_in(views.items.get_column("ITEM_CD").implode()).all():
        active = active.join(views.items.select("ITEM_CD"), on="ITEM_CD", how="semi")
    if not _sorted_by_item_and_seq(active):
        active = active.sort("ITEM_CD", "PROC_SEQ")
    row = pl.int_range(pl.len())
    first_row_of_item = pl.when(pl.col("ITEM_CD") != pl.col("ITEM_CD").shift(1)).then(row).forward_fill().fill_null(0)
    return (
        active
        .with_columns(
            (row - first_row_of_item).cast(pl.Int32).alias("pos"),
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


def _sorted_by_item_and_seq(routings: pl.DataFrame) -> bool:
    """Return whether rows are sorted by ITEM_CD, then PROC_SEQ (no null ITEM_CD or PROC_SEQ)."""
    item, seq = pl.col("ITEM_CD"), pl.col("PROC_SEQ")
    previous_item, previous_seq = item.shift(1), seq.shift(1)
    in_order = (item > previous_item) | ((item == previous_item) & (seq >= previous_seq))
    return bool(routings.select(
        item.is_not_null().all() & seq.is_not_null().all() & in_order.slice(1).all()
    ).item())


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


def _routing_and_signature_tables(views: Views, min_actual_orders: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    routings = routing_table(views, min_actual_orders)
    item_signatures, signatures = signature_table(routings)
    return routings, item_signatures, signatures


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
    which contains no routing information.
    """
    timings = timings if timings is not None else {}
    report = progress or (lambda stage, fraction, message: None)
    if views.items.height == 0:
        raise DataError("the item master has no valid row; see the validation report on the data page")
    if views.active_routings.join(views.items.select("ITEM_CD"), on="ITEM_CD", how="semi").height == 0:
        raise DataError(
            "no item of the item master has a valid routing, so there is nothing to index; "
            "see the validation report on the data page"
        )

    with timed("encode", timings):
        report("encode", 0.3, "encoding item attributes")
        feature_names = [f.name for f in settings.features if f.name in views.items.columns]
        items = views.items.select("ITEM_CD", "ITEM_NM", *[c for c in feature_names if c not in ("ITEM_CD", "ITEM_NM")])
        # The routing table is Polars work that releases the GIL, so it runs in a
        # worker thread while the encoder fit (mostly Python in scikit-learn) runs here.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="routing-table") as pool:
            tables = pool.submit(_routing_and_signature_tables, views, settings.min_actual_orders)
            encoder = ItemEncoder(features=list(settings.features)).fit(items)
            routings, item_signatures, signatures = tables.result()
        routed = items.join(item_signatures, on="ITEM_CD", how="inner")
        if index_item_codes is not None:
            routed = routed.join(pl.DataFrame({"ITEM_CD": index_item_codes}), on="ITEM_CD", how="semi")
        if routed.height == 0:
            raise DataError("no item with a routing is left to index")
        vectors = encoder.transform(routed)

    with timed("index", timings):
        report("index", 0.5, f"indexing {routed.height:,} items")
        index = ItemIndex.build(vectors, routed.get_column("ITEM_CD").to_list(), kind=settings.index_kind)
        index_items = routed.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), "ITEM_CD", "signature_id"
        )
        items = items.with_columns(pl.col("ITEM_CD").is_in(item_signatures.get_column("ITEM_CD").implode()).alias("has_routing"))
        indexed_routings = routings
        if index_item_codes is not None:
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
        # The evaluation builds its hold-out index from these rows instead of encoding again.
        extra={"vectors": vectors},
    )


# --- one training at a time ---------------------------------------------------------------


def _read_lock_holder(fd: int) -> dict[str, Any]:
    """Return the holder's record from an open lock file, or {} when it cannot be read yet."""
    for _ in range(LOCK_READ_RETRIES):
        raw = os.pread(fd, 4096, 0)
        if raw:
            try:
                return json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                pass
        # The holder writes its record right after taking the lock: wait briefly.
        time.sleep(0.02)
    return {}


@contextmanager
def training_lock(model_dir: Path) -> Iterator[dict[str, Any]]:
    """Hold the exclusive training lock of ``model_dir`` or raise TrainingInProgressError at once.

    The lock is ``fcntl.flock`` on ``<model_dir>/.training.lock``, so it covers
    every process and thread on this machine and is released by the kernel when
    its holder dies. The holder writes its pid and ISO start time into the file;
    a rejected request reports that start time.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock_holder(fd)
            started_at = holder.get("started_at")
            logger.warning("training rejected: lock %s is taken by pid %s, started %s", path, holder.get("pid"), started_at)
            raise TrainingInProgressError(
                f"another training started at {started_at or 'unknown time'} (pid {holder.get('pid', '?')}) "
                f"is still running in {model_dir}; wait until it finishes",
                started_at=started_at,
            ) from None
        holder = {"pid": os.getpid(), "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def training_holder(model_dir: Path) -> dict[str, Any] | None:
    """Return {pid, started_at} of a running training in ``model_dir``, or None.

    Informational only (for a page to say that a training runs): the record is
    read without taking the lock, and a record whose process is gone is ignored.
    """
    path = Path(model_dir) / LOCK_FILE
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # the process exists but belongs to another user
    return holder


def remove_stale_staging(model_dir: Path) -> list[str]:
    """Delete ``.tmp-*`` folders left by interrupted saves; call only while holding the training lock.

    Returns the names removed. Only a training writes ``.tmp-<version>``
    folders, so under the lock none of them belongs to a running save.
    """
    removed = []
    for folder in Path(model_dir).glob(".tmp-*"):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        logger.info("removed %d unfinished model folder(s) of interrupted trainings: %s", len(removed), ", ".join(removed))
    return removed


def _pause_for_tests(stage: str) -> None:
    """Sleep before ``stage`` when the test hook ``ROUTING_TEST_PAUSE_AT=<stage>[:seconds]`` is set.

    Tests use it to kill a training at a known stage; it does nothing otherwise.
    """
    value = os.environ.get(TEST_PAUSE_ENV, "")
    name, _, seconds = value.partition(":")
    if not name or name != stage:
        return
    delay = float(seconds) if seconds else 60.0
    logger.warning("test hook %s: pausing %.1f s before stage %s", TEST_PAUSE_ENV, delay, stage)
    time.sleep(delay)


# --- training runs ------------------------------------------------------------------------


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
        headline: dict[str, Any] = {}
        if self.metrics:
            baseline = self.metrics.get("baseline") or {}
            for key in HEADLINE_METRICS:
                headline[key] = self.metrics.get(key)
                headline[f"baseline_{key}"] = baseline.get(key)
            for key in ("noise_ceiling_top1", "inference_ms_p50", "inference_ms_p95", "n_eval_items"):
                headline[key] = self.metrics.get(key)
        return {
            "version": self.version,
            "promoted": self.promoted,
            "n_items": self.n_items,
            "n_indexed_items": self.n_indexed_items,
            "data_fingerprint": self.data_fingerprint,
            "seconds": self.timings,
            "metrics": headline,
        }


def sample_report(settings: Settings) -> dict[str, Any] | None:
    """Return the data folder's ``sample_report.json`` for sample or file sources, or None.

    The sample generator writes the file beside its Parquet views; an ERP
    extract has none, and an ODBC source has no data folder.
    """
    if settings.data_source not in ("sample", "files"):
        return None
    path = Path(settings.data_dir) / SAMPLE_REPORT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("cannot read %s, noise ceiling unknown: %s", path, exc)
        return None


def _context_metrics(settings: Settings, fingerprint: str, version: str) -> dict[str, Any]:
    report = sample_report(settings) or {}
    return {
        "model_version": version,
        "data_fingerprint": fingerprint,
        "libraries": library_versions(),
        "noise_ceiling_top1": report.get("noise_ceiling_top1"),
        "deviation_share": report.get("deviation_share"),
    }


def _load(settings: Settings, timings: dict[str, float], report: ProgressCallback) -> LoadedData:
    """Run the load and validate stages; validation happens inside ``load_views``."""
    from routing_core.sources import load_views

    _pause_for_tests("load")
    with timed("load", timings):
        report("load", 0.02, "loading data")
        loaded = load_views(settings)
    validate_seconds = float(getattr(loaded.report, "seconds", 0.0) or 0.0)
    # load_views validates as it reads, so the validate stage's time is the
    # validation report's and the load stage keeps the rest.
    timings["validate"] = round(validate_seconds, 4)
    timings["load"] = round(max(timings["load"] - validate_seconds, 0.0), 4)
    report(
        "validate", 0.25,
        f"{loaded.views.items.height:,} items, {loaded.views.routings.height:,} routing rows validated",
    )
    return loaded


def train_and_save(
    settings: Settings,
    *,
    promote: bool = True,
    progress: ProgressCallback | None = None,
    loaded: LoadedData | None = None,
    evaluate: bool = True,
    evaluation: EvaluationConfig | None = None,
) -> TrainResult:
    """Train, evaluate and save a new version; run the stages load, validate, encode, index, evaluate, save.

    Only one training runs at a time per model folder: a second request raises
    TrainingInProgressError at once. The version is written to a temporary
    folder and renamed into place, then ``metrics.json`` gets the final stage
    timings, and only then is ``models/current`` pointed at it (when
    ``promote``). A run killed at any point leaves the current version as it
    was. ``loaded`` skips the load stage; ``evaluate=False`` skips the
    evaluation, and the version has no ``metrics.json``.
    """
    report = progress or (lambda stage, fraction, message: None)
    timings: dict[str, float] = {}
    model_dir = Path(settings.model_dir)

    with training_lock(model_dir) as holder:
        logger.info("training started (pid %s) into %s", holder["pid"], model_dir)
        remove_stale_staging(model_dir)
        with timed("total", timings):
            if loaded is None:
                loaded = _load(settings, timings, report)
            views = loaded.views

            _pause_for_tests("encode")
            bundle = build_bundle(views, settings, timings=timings, progress=report)

            metrics: dict[str, Any] | None = None
            _pause_for_tests("evaluate")
            if evaluate and bundle.index.size >= 2:
                with timed("evaluate", timings):
                    report("evaluate", 0.6, "evaluating on held-out items")
                    part_types = views.items.select("ITEM_CD", "PART_TYPE") if "PART_TYPE" in views.items.columns else None
                    result = evaluate_bundle(
                        bundle, settings, part_types=part_types, config=evaluation or EvaluationConfig(), progress=report
                    )
                metrics = {**result.metrics, **_context_metrics(settings, loaded.fingerprint, bundle.version)}
                metrics["evaluation_timings"] = result.timings
            elif evaluate:
                logger.warning("fewer than two items have a routing: version %s is saved without evaluation", bundle.version)
            bundle.extra.pop("vectors", None)

            _pause_for_tests("save")
            with timed("save", timings):
                report("save", 0.9, "saving model")
                path = save_bundle(
                    bundle, model_dir, data_fingerprint=loaded.fingerprint, promote=False,
                    metrics=metrics,
                    extra_manifest={"source": loaded.source_description, "timings": dict(timings)},
                )

        if metrics is not None:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            metrics["created_at"] = manifest.get("created_at")
            metrics["training_seconds"] = dict(timings)
            write_metrics(model_dir, bundle.version, metrics)

        _pause_for_tests("promote")
        if promote:
            set_current(model_dir, bundle.version)
    stage_text = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in timings.items())
    logger.info("training finished: version %s (%s), %s", bundle.version, "promoted" if promote else "not promoted", stage_text)
    report("done", 1.0, f"model {bundle.version} saved")
    return TrainResult(
        version=bundle.version,
        path=path,
        timings=timings,
        metrics=metrics,
        n_items=bundle.items.height,
        n_indexed_items=bundle.index.size,
        promoted=promote,
        data_fingerprint=loaded.fingerprint,
    )


def ensure_model(settings: Settings, progress: ProgressCallback | None = None) -> str:
    """Return the current model version, training and promoting a first one when there is none."""
    version = current_version(settings.model_dir)
    if version is not None:
        return version
    logger.info("no model in %s: training the first one", settings.model_dir)
    return train_and_save(settings, progress=progress, promote=True).version
