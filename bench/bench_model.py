"""Benchmark training (with evaluation), prediction and model loading on the sample data at several sizes.

For each size the script generates the sample into ``<work>/sample-<n>`` (kept and
reused on later runs), trains into a fresh ``<work>/models-<n>`` with the command line
``python -m routing_core train --data ... --models ...`` in a subprocess, and reads the
stage timings and headline metrics from its JSON output. It then measures, in this
process, with the trained version:

- model load: ``registry.load_bundle`` (hash check included), median of 3 runs;
- predictor build: ``Predictor(bundle)`` (lookup tables), median of 3 runs;
- single prediction: ``predict_items`` with one code, p50 and p95 over 200 evenly
  spaced indexed items after one warm-up call;
- batch: one ``predict_items`` call with 1,000 codes, median of 3 runs.

Run from the repository root:
    .venv/bin/python bench/bench_model.py --sizes 20000 325000 --write-doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing_core.predict import PredictionOptions, Predictor  # noqa: E402
from routing_core.registry import library_versions, load_bundle, read_metrics  # noqa: E402
from routing_core.sample import generate_sample  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdoc  # noqa: E402  (bench/ is not a package)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SECTION_TITLE = "## Training and accuracy"
STAGES = ("load", "validate", "encode", "index", "evaluate", "save", "total")
# Targets at factory scale (325,000 items, about 1.7 M routing rows).
TARGETS = {"train_total": 30.0, "single_p95_ms": 50.0, "batch_s": 3.0, "load_s": 1.0}


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def environment() -> dict[str, str]:
    cpu = benchdoc.cpu_name()
    versions = library_versions(("polars", "numpy", "faiss-cpu", "scikit-learn"))
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        **{name: str(version) for name, version in versions.items()},
    }


def train_with_cli(data_dir: Path, model_dir: Path) -> tuple[dict[str, Any], float]:
    """Run the train command; return its JSON summary and the wall time of the whole process."""
    command = [sys.executable, "-m", "routing_core", "train", "--data", str(data_dir), "--models", str(model_dir)]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"training failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    text = completed.stdout
    summary = json.loads(text[text.index("\n{") + 1:])
    return summary, wall


def measure_prediction(model_dir: Path, singles: int, batch_size: int) -> dict[str, float]:
    """Return load, predictor build, single-prediction and batch timings of the current version."""
    loads, builds = [], []
    for _ in range(3):
        start = time.perf_counter()
        bundle = load_bundle(model_dir)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        predictor = Predictor(bundle)
        builds.append(time.perf_counter() - start)

    options = PredictionOptions()
    codes = bundle.index_items.get_column("ITEM_CD").to_list()
    sample = [codes[int(i)] for i in np.linspace(0, len(codes) - 1, singles)]
    predictor.predict_items(sample[:1], options)
    durations = []
    for code in sample:
        start = time.perf_counter()
        predictor.predict_items([code], options)
        durations.append((time.perf_counter() - start) * 1000.0)

    batch_codes = [codes[int(i)] for i in np.linspace(0, len(codes) - 1, min(batch_size, len(codes)))]
    batches = []
    for _ in range(3):
        start = time.perf_counter()
        predictor.predict_items(batch_codes, options)
        batches.append(time.perf_counter() - start)
    return {
        "load_s": statistics.median(loads),
        "predictor_s": statistics.median(builds),
        "single_p50_ms": float(np.percentile(durations, 50)),
        "single_p95_ms": float(np.percentile(durations, 95)),
        "batch_s": statistics.median(batches),
        "batch_size": len(batch_codes),
        "singles": len(durations),
    }


def run_size(n_items: int, work_dir: Path, singles: int, batch_size: int) -> dict[str, Any]:
    data_dir = work_dir / f"sample-{n_items}"
    if not (data_dir / "sample_report.json").is_file():
        print(f"generating {n_items:,} sample items into {data_dir}", flush=True)
        generate_sample(n_items, data_dir, seed=7)
    model_dir = work_dir / f"models-{n_items}"
    shutil.rmtree(model_dir, ignore_errors=True)
    print(f"training on {n_items:,} items", flush=True)
    load_start = _load_average()
    summary, wall = train_with_cli(data_dir, model_dir)
    metrics = read_metrics(model_dir, summary["version"]) or {}
    print(f"measuring prediction on {n_items:,} items", flush=True)
    prediction = measure_prediction(model_dir, singles, batch_size)
    report = json.loads((data_dir / "sample_report.json").read_text(encoding="utf-8"))
    row = {
        "n_items": n_items,
        "n_routing_rows": report.get("n_routing_rows"),
        "n_indexed_items": summary["n_indexed_items"],
        "stages": summary["seconds"],
        "process_s": wall,
        "metrics": metrics,
        "load_average": f"{load_start} → {_load_average()}",
        **prediction,
    }
    print(json.dumps({k: v for k, v in row.items() if k != "metrics"}, indent=1), flush=True)
    return row


def _value(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_section(rows: list[dict[str, Any]], env: dict[str, str], command: str) -> str:
    lines = [
        SECTION_TITLE,
        "",
        "A training run has the stages load (read the files and compute the data fingerprint), "
        "validate, encode (fit the encoder, build the routing table and encode the items), index, "
        "evaluate and save. Evaluation holds out 10 % of the items with a routing (at most 2,000, "
        "stratified by PART_TYPE, seed 7), indexes the rest in a second FAISS index and predicts "
        "the held-out items in one batch; its definitions are in `routing_core/evaluate.py`. It "
        "also times single predictions one at a time, up to 200 calls or about 2.5 s, which is part of "
        "the evaluate stage.",
        "",
        "Metrics, each also computed for the baseline (the most common JOB_CD sequence of the "
        "item's PART_TYPE among the indexed items; for its top-k, that PART_TYPE's sequences by "
        "frequency; items with an unknown or empty PART_TYPE get the overall ranking):",
        "",
        "- top-1: the first candidate's JOB_CD sequence equals the item's active routing; top-3 and "
        "top-5: the real sequence is among the first 3 or 5 candidates.",
        "- operation F1 (and precision, recall): the first candidate's JOB_CD multiset against the "
        "real one, computed per item and averaged over items (macro); no candidate counts as 0.",
        "- sequence similarity: 1 − normalised Levenshtein distance between the two JOB_CD sequences.",
        "- lead time ±15 % and MAPE: the first candidate's lead time for one piece against the item's "
        "planned one (queue + setup + run + wait + move, summed over its operations).",
        "- run time MAE: minutes per piece, pooled over operations matched by the n-th occurrence of "
        "the same JOB_CD.",
        "",
        f"Command: `{command}`. Each size trains with "
        "`python -m routing_core train --data <sample> --models <fresh folder>` in a subprocess; "
        "the sample data is generated beforehand and not counted.",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores, shared with other jobs (load average before "
        "→ after each training in the table), so the times are noisy. "
        f"Versions: Python {env['python']}, Polars {env['polars']}, NumPy {env['numpy']}, "
        f"faiss-cpu {env['faiss-cpu']}, scikit-learn {env['scikit-learn']}.",
        "",
        "Training stages (seconds):",
        "",
        "| items | routing rows | indexed items | " + " | ".join(STAGES) + " | process | load average |",
        "|---:|---:|---:|" + "---:|" * len(STAGES) + "---:|---|",
    ]
    for row in rows:
        stages = " | ".join(_value(row["stages"].get(stage), 2) for stage in STAGES)
        lines.append(
            f"| {row['n_items']:,} | {row['n_routing_rows']:,} | {row['n_indexed_items']:,} | {stages} "
            f"| {row['process_s']:.2f} | {row['load_average']} |"
        )
    lines += [
        "",
        "\"process\" is the wall time of the whole command, including Python start-up and imports.",
        "",
        "Accuracy on the held-out items (model / baseline; the baseline is the most common routing "
        "of the item's PART_TYPE):",
        "",
        "| items | held out | top-1 | top-3 | top-5 | operation F1 | sequence similarity "
        "| lead time ±15 % | lead time MAPE | run time MAE (min) | noise ceiling (top-1) |",
        "|---:|---:|---|---|---|---|---|---|---|---|---:|",
    ]
    for row in rows:
        m = row["metrics"]
        b = m.get("baseline") or {}
        cells = [
            f"{_value(m.get(key), digits)} / {_value(b.get(key), digits)}"
            for key, digits in (
                ("top1_accuracy", 3), ("top3_hit_rate", 3), ("top5_hit_rate", 3), ("operation_f1", 3),
                ("sequence_similarity", 3), ("lead_time_within_15pct", 3), ("lead_time_mape", 3), ("run_time_mae_min", 2),
            )
        ]
        lines.append(
            f"| {row['n_items']:,} | {m.get('n_eval_items', 0):,} | " + " | ".join(cells)
            + f" | {_value(m.get('noise_ceiling_top1'))} |"
        )
    lines += [
        "",
        "Prediction and loading, measured in the benchmark process after training:",
        "",
        "| items | model load (s) | predictor build (s) | single p50 (ms) | single p95 (ms) "
        f"| batch of {rows[0]['batch_size']:,} (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_items']:,} | {row['load_s']:.2f} | {row['predictor_s']:.2f} | {row['single_p50_ms']:.1f} "
            f"| {row['single_p95_ms']:.1f} | {row['batch_s']:.2f} |"
        )
    lines += ["", *_target_lines(rows), ""]
    return "\n".join(lines)


def _target_lines(rows: list[dict[str, Any]]) -> list[str]:
    largest = max(rows, key=lambda row: row["n_items"])
    total = largest["stages"].get("total", 0.0)
    checks = [
        ("training with evaluation ≤ 30 s", total, TARGETS["train_total"], "s"),
        ("single prediction p95 ≤ 50 ms", largest["single_p95_ms"], TARGETS["single_p95_ms"], "ms"),
        (f"batch of {largest['batch_size']:,} ≤ 3 s", largest["batch_s"], TARGETS["batch_s"], "s"),
        ("model load ≤ 1 s", largest["load_s"], TARGETS["load_s"], "s"),
    ]
    lines = [f"Targets at {largest['n_items']:,} items:", ""]
    for text, value, target, unit in checks:
        verdict = "met" if value <= target else f"MISSED by {value - target:.2f} {unit} ({value / target:.2f}× the target)"
        lines.append(f"- {text}: {verdict} ({value:.2f} {unit})")
    return lines



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 325_000], help="sample sizes in items")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/routing-bench-model"), help="folder for samples and models")
    parser.add_argument("--singles", type=int, default=200, help="single predictions timed per size (default 200)")
    parser.add_argument("--batch", type=int, default=1_000, help="items in the batch prediction (default 1000)")
    parser.add_argument("--write-doc", type=Path, help="markdown file whose 'Training and accuracy' section is replaced")
    args = parser.parse_args()

    env = environment()
    rows = [run_size(n, args.work_dir, args.singles, args.batch) for n in args.sizes]
    command = "python bench/bench_model.py " + " ".join(sys.argv[1:])
    benchdoc.publish(render_section(rows, env, command), args.write_doc, SECTION_TITLE)


if __name__ == "__main__":
    main()
