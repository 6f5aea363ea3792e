"""Prometheus exporter: real HTTP scrapes of the active model's metrics on loopback."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from routing_core.metrics_server import build_registry, start_server
from routing_core.registry import set_current, write_json

MANIFEST_TEMPLATE = {
    "schema_version": 1, "created_at": "2026-12-01T10:00:00+00:00", "data_fingerprint": "abc123",
    "index_kind": "flat", "n_items": 100, "n_indexed_items": 80,
}


def _version(model_dir, version: str, top1: float | None, with_metrics: bool = True) -> None:
    folder = model_dir / version
    folder.mkdir(parents=True)
    write_json(folder / "manifest.json", {**MANIFEST_TEMPLATE, "version": version})
    if with_metrics:
        write_json(folder / "metrics.json", {
            "model_version": version, "data_fingerprint": f"fp-{version}", "created_at": "2026-12-01T10:00:00+00:00",
            "top1_accuracy": top1, "top5_hit_rate": 0.9, "operation_f1": 0.95, "sequence_similarity": 0.93,
            "lead_time_within_15pct": 0.8, "lead_time_mape": 0.1, "run_time_mae_min": 2.0,
            "inference_ms_p50": 12.0, "inference_ms_p95": 30.0, "index_recall_at_10": None,
            "noise_ceiling_top1": 0.89, "n_items": 100, "n_indexed_items": 80, "n_eval_items": 8,
            "training_seconds": {"encode": 1.5, "total": 4.0},
            "baseline": {"top1_accuracy": 0.25, "top5_hit_rate": 0.7, "run_time_mae_min": 6.0, "inference_ms_p95": None},
        })


def _samples(model_dir) -> dict[tuple[str, tuple], float]:
    from prometheus_client import generate_latest

    text = generate_latest(build_registry(model_dir)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_gauges_of_current_version(tmp_path):
    _version(tmp_path, "v1", 0.8)
    set_current(tmp_path, "v1")
    samples = _samples(tmp_path)
    assert samples[("routing_ml_model_metrics_available", ())] == 1.0
    assert samples[("routing_ml_model_top1_accuracy", (("model", "model"),))] == 0.8
    assert samples[("routing_ml_model_top1_accuracy", (("model", "baseline"),))] == 0.25
    assert samples[("routing_ml_model_run_time_mae_seconds", (("model", "model"),))] == 120.0
    assert samples[("routing_ml_model_inference_p95_seconds", (("model", "model"),))] == 0.03
    assert samples[("routing_ml_model_training_seconds", (("stage", "total"),))] == 4.0
    assert samples[("routing_ml_model_indexed_items", ())] == 80.0
    assert samples[("routing_ml_model_noise_ceiling_top1", ())] == 0.89
    info = [k for k in samples if k[0] == "routing_ml_model_info"]
    assert info == [("routing_ml_model_info", (("data_fingerprint", "fp-v1"), ("index_kind", "flat"), ("version", "v1")))]
    # Null values are left out, not exported as NaN.
    assert ("routing_ml_model_index_recall_at_10", ()) not in samples
    assert ("routing_ml_model_inference_p95_seconds", (("model", "baseline"),)) not in samples


def test_promotion_shows_at_next_scrape(tmp_path):
    _version(tmp_path, "v1", 0.8)
    _version(tmp_path, "v2", 0.6)
    set_current(tmp_path, "v1")
    server, thread = start_server(tmp_path, host="127.0.0.1", port=0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"

        def top1() -> float:
            text = urllib.request.urlopen(url, timeout=10).read().decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return next(s.value for s in families["routing_ml_model_top1_accuracy"].samples if s.labels["model"] == "model")

        assert top1() == 0.8
        set_current(tmp_path, "v2")
        assert top1() == 0.6
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("case", ["no_model", "no_metrics", "corrupt"])
def test_missing_metrics_reported_as_unavailable(tmp_path, case):
    if case != "no_model":
        _version(tmp_path, "v1", 0.8, with_metrics=case == "corrupt")
        set_current(tmp_path, "v1")
    if case == "corrupt":
        (tmp_path / "v1" / "metrics.json").write_text("{not json")
    samples = _samples(tmp_path)
    assert samples == {("routing_ml_model_metrics_available", ()): 0.0}
