"""Training runs: one at a time, killed runs leave the current model intact, promote and roll back."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from routing_core.config import load_settings
from routing_core.errors import TrainingInProgressError
from routing_core.evaluate import EvaluationConfig
from routing_core.predict import PredictionOptions, Predictor
from routing_core.registry import current_version, list_versions, load_bundle, manifest_hash, read_metrics, set_current
from routing_core.sample import generate_sample
from routing_core.train import LOCK_FILE, TEST_PAUSE_ENV, train_and_save, training_holder, training_lock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FAST = EvaluationConfig(latency_samples=10, min_latency_samples=1)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    generate_sample(600, folder, seed=7)
    return folder


@pytest.fixture(scope="module")
def other_sample_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample_other")
    generate_sample(450, folder, seed=11)
    return folder


def _settings(data_dir: Path, model_dir: Path):
    return load_settings(data_source="files", data_dir=data_dir, model_dir=model_dir)


def _folder_hashes(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir()) if path.is_file()
    }


def _start_cli_training(data_dir: Path, model_dir: Path, pause_at: str) -> subprocess.Popen:
    env = {**os.environ, TEST_PAUSE_ENV: f"{pause_at}:120", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "routing_core", "train", "--data", str(data_dir), "--models", str(model_dir)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_pause(process: subprocess.Popen, stage: str, timeout: float = 120.0) -> list[str]:
    """Read the training's log until the test hook reports the pause; return the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        if "test hook" in line and f"before stage {stage}" in line:
            return lines
    process.kill()
    pytest.fail(f"training never paused before {stage}:\n{''.join(lines)}")


def test_train_writes_metrics_and_promotes_first(sample_dir, tmp_path):
    settings = _settings(sample_dir, tmp_path / "models")
    result = train_and_save(settings, evaluation=FAST)
    assert current_version(settings.model_dir) == result.version
    metrics = read_metrics(settings.model_dir, result.version)
    assert metrics["model_version"] == result.version
    assert metrics["data_fingerprint"] == result.data_fingerprint
    assert set(metrics["training_seconds"]) >= {"load", "validate", "encode", "index", "evaluate", "save", "total"}
    assert metrics["noise_ceiling_top1"] == json.loads((sample_dir / "sample_report.json").read_text())["noise_ceiling_top1"]
    assert metrics["baseline"]["top1_accuracy"] is not None
    assert metrics["created_at"]
    # Strict JSON: no NaN or Infinity anywhere in the file.
    json.loads((settings.model_dir / result.version / "metrics.json").read_text(), parse_constant=pytest.fail)


def test_progress_reports_every_stage(sample_dir, tmp_path):
    seen: list[tuple[str, float]] = []
    train_and_save(_settings(sample_dir, tmp_path / "models"), evaluation=FAST,
                   progress=lambda stage, fraction, message: seen.append((stage, fraction)))
    stages = [stage for stage, _ in seen]
    for stage in ("load", "validate", "encode", "index", "evaluate", "save", "done"):
        assert stage in stages
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_no_promote_keeps_current(sample_dir, tmp_path):
    settings = _settings(sample_dir, tmp_path / "models")
    first = train_and_save(settings, evaluation=FAST)
    second = train_and_save(settings, promote=False, evaluation=FAST)
    assert current_version(settings.model_dir) == first.version
    assert second.promoted is False
    assert [v["version"] for v in list_versions(settings.model_dir)] == [first.version, second.version]


def test_concurrent_threads_one_rejected(sample_dir, tmp_path, monkeypatch):
    # The pause keeps the winner inside the lock while the other request arrives.
    monkeypatch.setenv(TEST_PAUSE_ENV, "encode:1.5")
    settings = _settings(sample_dir, tmp_path / "models")
    barrier = threading.Barrier(2)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(train_and_save(settings, evaluation=FAST))
        except TrainingInProgressError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 1
    assert len(errors) == 1
    assert errors[0].started_at
    assert errors[0].started_at in str(errors[0])


def test_second_process_rejected_with_start_time(sample_dir, tmp_path):
    model_dir = tmp_path / "models"
    process = _start_cli_training(sample_dir, model_dir, "evaluate")
    try:
        _wait_for_pause(process, "evaluate")
        holder = json.loads((model_dir / LOCK_FILE).read_text())
        assert holder["pid"] == process.pid
        assert training_holder(model_dir)["started_at"] == holder["started_at"]
        with pytest.raises(TrainingInProgressError) as info:
            train_and_save(_settings(sample_dir, model_dir), evaluation=FAST)
        assert info.value.started_at == holder["started_at"]
    finally:
        process.kill()
        process.wait(timeout=30)
    # The kernel released the dead holder's lock: a new training runs.
    assert training_holder(model_dir) is None
    result = train_and_save(_settings(sample_dir, model_dir), evaluation=FAST)
    assert current_version(model_dir) == result.version


@pytest.mark.parametrize("stage", ["evaluate", "save", "promote"])
def test_killed_training_leaves_current_untouched(sample_dir, tmp_path, stage):
    model_dir = tmp_path / "models"
    settings = _settings(sample_dir, model_dir)
    current = train_and_save(settings, evaluation=FAST).version
    pointer_before = (model_dir / "current").read_bytes()
    hashes_before = _folder_hashes(model_dir / current)

    process = _start_cli_training(sample_dir, model_dir, stage)
    try:
        _wait_for_pause(process, stage)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert (model_dir / "current").read_bytes() == pointer_before
    assert _folder_hashes(model_dir / current) == hashes_before
    assert load_bundle(model_dir).version == current
    versions = [v["version"] for v in list_versions(model_dir)]
    # Killed before "promote", the new version was complete but never made current.
    assert len(versions) == (2 if stage == "promote" else 1)


def test_stale_staging_removed_by_next_training(sample_dir, tmp_path):
    model_dir = tmp_path / "models"
    stale = model_dir / ".tmp-20260101-000000-abcdef"
    stale.mkdir(parents=True)
    (stale / "index.faiss").write_bytes(b"half written")
    train_and_save(_settings(sample_dir, model_dir), evaluation=FAST)
    assert not stale.exists()


def test_lock_released_after_error(tmp_path):
    with pytest.raises(RuntimeError):
        with training_lock(tmp_path):
            raise RuntimeError("stage failed")
    with training_lock(tmp_path) as holder:
        assert holder["pid"] == os.getpid()


def test_promote_and_rollback_change_predictions(sample_dir, other_sample_dir, tmp_path):
    from pages.common import current_predictor

    model_dir = tmp_path / "models"
    first = train_and_save(_settings(sample_dir, model_dir), evaluation=FAST)
    second = train_and_save(_settings(other_sample_dir, model_dir), promote=False, evaluation=FAST)
    settings = _settings(sample_dir, model_dir)
    options = PredictionOptions()

    def predicted_support() -> tuple[str, set[str], Predictor]:
        predictor = current_predictor(settings)
        code = predictor.bundle.index_items.get_column("ITEM_CD")[0]
        result = predictor.predict_items([code], options)
        return predictor.bundle.version, set(result.support.get_column("item_cd").to_list()), predictor

    key_first = manifest_hash(model_dir)
    version, support, predictor = predicted_support()
    assert version == first.version
    assert support <= set(predictor.bundle.index_items.get_column("ITEM_CD").to_list())

    set_current(model_dir, second.version)  # promote the challenger
    assert manifest_hash(model_dir) != key_first
    version, support, predictor = predicted_support()
    assert version == second.version
    assert predictor.bundle.items.height == 450
    assert support <= set(predictor.bundle.index_items.get_column("ITEM_CD").to_list())

    set_current(model_dir, first.version)  # roll back
    assert manifest_hash(model_dir) == key_first
    version, _, predictor = predicted_support()
    assert version == first.version
    assert predictor.bundle.items.height != 450


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "routing_core", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )


def test_cli_train_prints_stages_and_headline(sample_dir, tmp_path):
    model_dir = tmp_path / "models"
    completed = _cli("train", "--data", str(sample_dir), "--models", str(model_dir))
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for stage in ("load", "validate", "encode", "index", "evaluate", "save", "total"):
        assert f"\n{stage} " in out
    assert "top-1 accuracy" in out
    assert "baseline" in out
    assert "noise ceiling" in out
    summary = json.loads(out[out.index("\n{") + 1:])
    assert summary["promoted"] is True
    assert current_version(model_dir) == summary["version"]

    completed = _cli("train", "--data", str(sample_dir), "--models", str(model_dir), "--no-promote")
    assert completed.returncode == 0, completed.stderr
    assert "saved, not promoted" in completed.stdout
    assert current_version(model_dir) == summary["version"]


def test_cli_metrics_prints_version_json(sample_dir, tmp_path):
    model_dir = tmp_path / "models"
    first = train_and_save(_settings(sample_dir, model_dir), evaluation=FAST)
    completed = _cli("metrics", "--models", str(model_dir))
    assert completed.returncode == 0, completed.stderr
    metrics = json.loads(completed.stdout)
    assert metrics["model_version"] == first.version
    assert "baseline" in metrics

    completed = _cli("metrics", "--models", str(model_dir), "--version", first.version)
    assert json.loads(completed.stdout)["model_version"] == first.version


def test_cli_metrics_errors_exit_non_zero(sample_dir, tmp_path):
    model_dir = tmp_path / "models"
    completed = _cli("metrics", "--models", str(model_dir))
    assert completed.returncode == 2  # no model yet is bad input, like an unknown version
    assert "no current model" in completed.stderr
    version = train_and_save(_settings(sample_dir, model_dir), evaluate=False).version
    completed = _cli("metrics", "--models", str(model_dir), "--version", version)
    assert completed.returncode == 1
    assert "has no metrics.json" in completed.stderr
    completed = _cli("metrics", "--models", str(model_dir), "--version", "nope")
    assert completed.returncode == 2  # an unknown version is bad input
    assert "not found" in completed.stderr


def test_cli_train_fails_while_another_runs(sample_dir, tmp_path):
    model_dir = tmp_path / "models"
    with training_lock(model_dir) as holder:
        completed = _cli("train", "--data", str(sample_dir), "--models", str(model_dir))
    assert completed.returncode == 1
    assert holder["started_at"] in completed.stderr
    assert current_version(model_dir) is None


def test_cli_train_bad_data_folder_fails(tmp_path):
    completed = _cli("train", "--data", str(tmp_path / "missing"), "--models", str(tmp_path / "models"))
    assert completed.returncode != 0
    assert "error" in completed.stderr
