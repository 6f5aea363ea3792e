"""Command line end to end in subprocesses: sample, train, predict JSON schema, times, bad input."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "routing_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, models = root / "data", root / "models"
    assert _run("sample", "--items", "600", "--out", str(data)).returncode == 0
    result = _run("train", "--data", str(data), "--models", str(models))
    assert result.returncode == 0, result.stderr
    routed = pl.read_parquet(data / "BI_ROUTING_VIEW.parquet").get_column("ITEM_CD").str.strip_chars()
    items = pl.read_parquet(data / "BI_ITEM_INFO_VIEW.parquet").get_column("ITEM_CD")
    item = items.filter(items.is_in(routed.implode()) & ~items.str.contains(r"\s")).sort()[0]
    return data, models, item


def test_predict_json_schema(trained):
    data, models, item = trained
    result = _run("predict", "--data", str(data), "--models", str(models), "--item", item, "--lot-size", "10")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"item_cd", "candidates", "warnings"}
    assert output["item_cd"] == item
    candidate = output["candidates"][0]
    for key in ("candidate_id", "rank", "score", "signature", "support", "operations", "lead_time_min"):
        assert key in candidate
    assert {"item_cd", "similarity"} <= set(candidate["support"][0])
    operation = candidate["operations"][0]
    for key in ("proc_seq", "job_cd", "job_nm", "res_cd", "inside_flag", "setup_min", "run_min", "queue_min", "wait_min", "move_min"):
        assert key in operation
    assert item not in [s["item_cd"] for c in output["candidates"] for s in c["support"]]
    ids = [c["candidate_id"] for c in output["candidates"]]
    assert len(ids) == len(set(ids))


def test_predict_csv(trained):
    data, models, item = trained
    result = _run("predict", "--data", str(data), "--models", str(models), "--item", item, "--format", "csv")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("item_cd,candidate_id,rank")


def test_times_by_job(trained):
    data, _, _ = trained
    result = _run("times", "--data", str(data), "--by", "JOB_CD", "--format", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout)[0]["JOB_CD"]


@pytest.mark.parametrize(
    "args",
    [
        ["--item", "NO-SUCH-ITEM"],
        ["--item", "X", "--lot-size", "-1"],
        ["--item", "X", "--lot-size", "nan"],
        ["--item", "X", "--lot-size", "1e308"],
        ["--item", "X", "--lot-size", "1000001"],
        ["--item", "X", "--top", "0"],
        ["--item", ""],
        ["--item", " \u3000 "],
        ["--items-file", ""],
    ],
)
def test_predict_bad_input_one_line(trained, args):
    data, models, item = trained
    args = [item if a == "X" else a for a in args]
    result = _run("predict", "--data", str(data), "--models", str(models), *args)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_predict_empty_item_names_option(trained):
    data, models, _ = trained
    result = _run("predict", "--data", str(data), "--models", str(models), "--item", "")
    assert result.stderr.strip().splitlines()[-1] == "error: --item is empty; give an existing ITEM_CD"


def test_predict_lot_size_at_maximum(trained):
    data, models, item = trained
    result = _run("predict", "--data", str(data), "--models", str(models), "--item", item, "--lot-size", "1000000")
    assert result.returncode == 0, result.stderr
    lead_times = [c["lead_time_min"] for c in json.loads(result.stdout)["candidates"]]
    assert all(isinstance(t, float) and t > 0 for t in lead_times)

    too_large = _run("predict", "--data", str(data), "--models", str(models), "--item", item, "--lot-size", "1e308")
    assert "at most 1,000,000 pieces" in too_large.stderr.strip().splitlines()[-1]


def test_metrics_by_version_name(trained):
    _, models, _ = trained
    version = (models / "current").read_text(encoding="utf-8").strip()
    result = _run("metrics", "--models", str(models), "--version", version)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_version"] == version


def test_metrics_without_model_is_bad_input(tmp_path):
    result = _run("metrics", "--models", str(tmp_path / "models"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: no current model in {tmp_path / 'models'}; train one first or pass --version"]
    assert result.stdout == ""


def test_metrics_rejects_paths_as_version(trained, tmp_path):
    _, models, _ = trained
    version = (models / "current").read_text(encoding="utf-8").strip()
    other = tmp_path / "other"
    shutil.copytree(models, other)
    (tmp_path / "metrics.json").write_text("{}", encoding="utf-8")
    for name in (str(other / version), str(models / version), f"../{other.name}/{version}", "..", ".", "", "current"):
        result = _run("metrics", "--models", str(models), "--version", name)
        assert result.returncode == 2, name
        assert "not found" in result.stderr.strip().splitlines()[-1], name
        assert result.stdout == "", name


@pytest.fixture(scope="module")
def formula_data(tmp_path_factory):
    """A small sample whose JOB_NM and RES_CD are formula-like text, and a model trained on it."""
    root = tmp_path_factory.mktemp("formula")
    data, models = root / "data", root / "models"
    assert _run("sample", "--items", "150", "--out", str(data)).returncode == 0
    routings = pl.read_parquet(data / "BI_ROUTING_VIEW.parquet")
    routings.with_columns(
        pl.lit("=cmd|' /C calc'!A0").alias("JOB_NM"),
        pl.lit("@SUM(1+1)*cmd|' /C calc'!A0").alias("RES_CD"),
    ).write_parquet(data / "BI_ROUTING_VIEW.parquet")
    result = _run("train", "--data", str(data), "--models", str(models))
    assert result.returncode == 0, result.stderr
    item = routings.get_column("ITEM_CD").str.strip_chars().sort()[0]
    return data, models, item


def test_csv_output_escapes_formulas(formula_data):
    data, models, item = formula_data
    predicted = _run("predict", "--data", str(data), "--models", str(models), "--item", item, "--format", "csv")
    times = _run("times", "--data", str(data), "--by", "RES_CD", "--format", "csv")
    assert predicted.returncode == 0, predicted.stderr
    assert times.returncode == 0, times.stderr

    rows = pl.read_csv(io.StringIO(predicted.stdout), infer_schema=False)
    assert rows.height > 0
    assert set(rows["job_nm"]) == {"'=cmd|' /C calc'!A0"}
    assert set(rows["res_cd"]) == {"'@SUM(1+1)*cmd|' /C calc'!A0"}
    # Work orders keep their own resource codes, so the formula is one group of several.
    resources = pl.read_csv(io.StringIO(times.stdout), infer_schema=False)["RES_CD"].to_list()
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in resources
    assert not [r for r in resources if r[0] in "=+@"]


def test_missing_data_folder(tmp_path):
    result = _run("train", "--data", str(tmp_path / "nope"), "--models", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "not found" in result.stderr.strip().splitlines()[-1]


def test_sample_zero_items(tmp_path):
    result = _run("sample", "--items", "0", "--out", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_train_without_routings(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "BI_ITEM_INFO_VIEW.csv").write_text("ITEM_CD,PART_TYPE\nA1,FACE\n", encoding="utf-8")
    (data / "BI_ROUTING_VIEW.csv").write_text("ITEM_CD,PROC_SEQ,JOB_CD\n", encoding="utf-8")
    result = _run("train", "--data", str(data), "--models", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "no item of the item master has a valid routing" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_without_model_says_it_trains(trained, tmp_path):
    data, _, item = trained
    models = tmp_path / "new-models"
    result = _run("predict", "--data", str(data), "--models", str(models), "--item", item)
    assert result.returncode == 0, result.stderr
    assert f"no model in {models}: training a first one" in result.stderr
