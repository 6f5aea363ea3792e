"""Command line end to end in subprocesses: sample, train, predict JSON schema, times, bad input."""

import json
import os
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
        ["--item", "X", "--top", "0"],
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
