"""Prometheus exporter of the active model's evaluation metrics (``python -m routing_core serve-metrics``).

The collector reads ``models/current`` and that version's ``metrics.json`` on
every scrape, so a promotion or rollback shows at the next scrape without a
restart. Exposed series (ratios are 0–1, times are in seconds):

- ``routing_ml_model_<metric>{model="model"|"baseline"}`` for the accuracy
  metrics (top1_accuracy, top3_hit_rate, top5_hit_rate, operation_precision,
  operation_recall, operation_f1, sequence_similarity, lead_time_within_15pct,
  lead_time_mape). The label ``model`` is "model" for the trained model and
  "baseline" for the PART_TYPE baseline that every figure is reported beside.
- ``routing_ml_model_run_time_mae_seconds{model=...}``: run time per piece error.
- ``routing_ml_model_inference_p50_seconds`` and ``..._p95_seconds{model="model"}``.
- ``routing_ml_model_index_recall_at_10`` (only for an hnsw index) and
  ``routing_ml_model_noise_ceiling_top1`` (only for sample data).
- ``routing_ml_model_training_seconds{stage=...}`` per training stage and ``total``.
- ``routing_ml_model_items``, ``routing_ml_model_indexed_items``, ``routing_ml_model_eval_items``.
- ``routing_ml_model_created_timestamp_seconds``: when the version was saved.
- ``routing_ml_model_info{version=..., data_fingerprint=..., index_kind=...} 1``.
- ``routing_ml_model_metrics_available``: 1 when the current version has
  readable metrics, else 0 and none of the series above.

No label carries an item code.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from routing_core.registry import MANIFEST, current_version, read_metrics

logger = logging.getLogger(__name__)

PREFIX = "routing_ml_model"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108

# metrics.json key → help text of the gauge with the same name.
RATIO_METRICS = {
    "top1_accuracy": "Share of held-out items whose first proposed JOB_CD sequence equals the real one",
    "top3_hit_rate": "Share of held-out items whose real JOB_CD sequence is among the first 3 proposals",
    "top5_hit_rate": "Share of held-out items whose real JOB_CD sequence is among the first 5 proposals",
    "operation_precision": "Mean per-item precision of the first proposal's JOB_CD multiset",
    "operation_recall": "Mean per-item recall of the first proposal's JOB_CD multiset",
    "operation_f1": "Mean per-item F1 of the first proposal's JOB_CD multiset",
    "sequence_similarity": "Mean 1 - normalised Levenshtein distance between proposed and real JOB_CD sequences",
    "lead_time_within_15pct": "Share of held-out items whose proposed lot-size-1 lead time is within 15 % of the real one",
    "lead_time_mape": "Mean absolute percentage error of the lot-size-1 lead time, as a fraction",
}


class ModelMetricsCollector(Collector):
    """Collector that reads the current model version's metrics.json at each scrape."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)

    def collect(self) -> Iterator[Metric]:
        version = current_version(self.model_dir)
        metrics = self._read(version) if version else None
        available = GaugeMetricFamily(
            f"{PREFIX}_metrics_available", "1 when the current model version has readable evaluation metrics"
        )
        available.add_metric([], 1.0 if metrics else 0.0)
        yield available
        if not metrics or version is None:
            return
        yield from self._metric_families(version, metrics)

    def _read(self, version: str) -> dict[str, Any] | None:
        try:
            return read_metrics(self.model_dir, version)
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("cannot read metrics of model version %s: %s", version, exc)
            return None

    def _manifest(self, version: str) -> dict[str, Any]:
        try:
            return json.loads((self.model_dir / version / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def _metric_families(self, version: str, metrics: dict[str, Any]) -> Iterator[Metric]:
        baseline = metrics.get("baseline") or {}
        manifest = self._manifest(version)
        for key, help_text in RATIO_METRICS.items():
            family = GaugeMetricFamily(f"{PREFIX}_{key}", help_text, labels=["model"])
            _add(family, ["model"], metrics.get(key))
            _add(family, ["baseline"], baseline.get(key))
            yield family

        mae = GaugeMetricFamily(
            f"{PREFIX}_run_time_mae_seconds", "Mean absolute error of the run time per piece over matched operations",
            labels=["model"],
        )
        _add(mae, ["model"], _minutes_to_seconds(metrics.get("run_time_mae_min")))
        _add(mae, ["baseline"], _minutes_to_seconds(baseline.get("run_time_mae_min")))
        yield mae

        for quantile in ("p50", "p95"):
            latency = GaugeMetricFamily(
                f"{PREFIX}_inference_{quantile}_seconds", f"{quantile} of single-item prediction time", labels=["model"]
            )
            milliseconds = metrics.get(f"inference_ms_{quantile}")
            _add(latency, ["model"], None if milliseconds is None else milliseconds / 1000.0)
            yield latency

        for key, help_text in (
            ("index_recall_at_10", "Share of the exact 10 nearest neighbours found by the approximate index"),
            ("noise_ceiling_top1", "Top-1 accuracy that no predictor can beat on the sample data"),
        ):
            if metrics.get(key) is not None:
                yield GaugeMetricFamily(f"{PREFIX}_{key}", help_text, value=float(metrics[key]))

        training = GaugeMetricFamily(f"{PREFIX}_training_seconds", "Duration of each training stage", labels=["stage"])
        for stage, seconds in (metrics.get("training_seconds") or {}).items():
            _add(training, [str(stage)], seconds)
        yield training

        for name, key, help_text in (
            ("items", "n_items", "Items in the item master of the training data"),
            ("indexed_items", "n_indexed_items", "Items with a routing in the model's index"),
            ("eval_items", "n_eval_items", "Held-out items the metrics were computed on"),
        ):
            if metrics.get(key) is not None:
                yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=float(metrics[key]))

        created = _timestamp(metrics.get("created_at") or manifest.get("created_at"))
        if created is not None:
            yield GaugeMetricFamily(f"{PREFIX}_created_timestamp_seconds", "Unix time when the version was saved", value=created)

        info = InfoMetricFamily(PREFIX, "The active model version")
        info.add_metric([], {
            "version": version,
            "data_fingerprint": str(metrics.get("data_fingerprint") or manifest.get("data_fingerprint") or ""),
            "index_kind": str(manifest.get("index_kind") or ""),
        })
        yield info


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    if value is not None:
        family.add_metric(labels, float(value))


def _minutes_to_seconds(minutes: float | None) -> float | None:
    return None if minutes is None else minutes * 60.0


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def build_registry(model_dir: Path) -> CollectorRegistry:
    """Return a registry holding only the model metrics collector of ``model_dir``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ModelMetricsCollector(model_dir))
    return registry


def start_server(model_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
    """Start the HTTP exporter in a background thread; return (server, thread). Port 0 picks a free port."""
    server, thread = start_http_server(port, addr=host, registry=build_registry(model_dir))
    logger.info("serving model metrics of %s at http://%s:%d/metrics", model_dir, host, server.server_port)
    return server, thread


def serve(model_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the exporter until SIGINT or SIGTERM."""
    server, thread = start_server(model_dir, host, port)
    stopped = threading.Event()

    def stop(signum: int, frame: object) -> None:
        logger.info("received signal %d: stopping the metrics server", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    logger.info("metrics server stopped")
