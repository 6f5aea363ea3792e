"""Command line: ``python -m routing_core <command>``; run with ``--help`` for the commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from routing_core.errors import ConfigError, DataError, ModelError, RoutingError

logger = logging.getLogger("routing_core.cli")

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand handler; its parser is added in ``build_parser``."""
    def register(func: Command) -> Command:
        _COMMANDS[name] = func
        return func
    return register


def _settings(args: argparse.Namespace, **extra):
    from routing_core.config import load_settings

    overrides = dict(extra)
    if getattr(args, "data", None):
        overrides.setdefault("data_dir", Path(args.data).resolve())
        overrides.setdefault("data_source", "files")
    if getattr(args, "models", None):
        overrides["model_dir"] = Path(args.models).resolve()
    return load_settings(**overrides)


# --- sample -------------------------------------------------------------------------

@command("sample")
def _cmd_sample(args: argparse.Namespace) -> int:
    from routing_core.sample import generate_sample

    report = generate_sample(args.items, Path(args.out), seed=args.seed)
    print(json.dumps({
        "out": str(Path(args.out).resolve()),
        "n_items": report.n_items,
        "n_routing_rows": report.n_routing_rows,
        "n_work_order_rows": report.n_work_order_rows,
        "noise_ceiling_top1": report.noise_ceiling_top1,
    }, ensure_ascii=False))
    return 0


# --- train --------------------------------------------------------------------------

@command("train")
def _cmd_train(args: argparse.Namespace) -> int:
    from routing_core.train import train_and_save

    settings = _settings(args)
    result = train_and_save(settings, promote=not args.no_promote)
    print(f"{'stage':<10} {'seconds':>8}")
    for stage, seconds in result.timings.items():
        print(f"{stage:<10} {seconds:8.2f}")
    print()
    for line in _headline_lines(result.metrics):
        print(line)
    state = "promoted to current" if result.promoted else "saved, not promoted"
    print(f"version {result.version}: {state}")
    print(json.dumps(result.summary(), ensure_ascii=False, indent=2, allow_nan=False))
    return 0


_HEADLINE_LABELS = {
    "top1_accuracy": "top-1 accuracy",
    "top5_hit_rate": "top-5 hit rate",
    "operation_f1": "operation F1",
    "sequence_similarity": "sequence similarity",
    "lead_time_within_15pct": "lead time within ±15 %",
}


def _headline_lines(metrics: dict | None) -> list[str]:
    """Return one line per headline metric: the model's value, the baseline's, and the noise ceiling for top-1."""
    if not metrics:
        return ["no evaluation: the version has no metrics"]
    baseline = metrics.get("baseline") or {}

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"evaluated on {metrics.get('n_eval_items', 0):,} held-out items, {metrics.get('n_eval_index_items', 0):,} indexed"]
    for key, label in _HEADLINE_LABELS.items():
        line = f"{label:<24} {shown(metrics.get(key)):>6}   baseline {shown(baseline.get(key)):>6}"
        if key == "top1_accuracy":
            line += f"   noise ceiling {shown(metrics.get('noise_ceiling_top1'))}"
        lines.append(line)
    p50, p95 = metrics.get("inference_ms_p50"), metrics.get("inference_ms_p95")
    if p50 is not None and p95 is not None:
        lines.append(f"{'single prediction':<24} p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    return lines


# --- metrics ------------------------------------------------------------------------

@command("metrics")
def _cmd_metrics(args: argparse.Namespace) -> int:
    from routing_core.registry import current_version, is_version, list_versions, read_metrics, strict_json

    settings = _settings(args)
    version = args.version if args.version is not None else current_version(settings.model_dir)
    if version is None:
        # A models folder without a current model is bad input, like an unknown --version.
        raise DataError(f"no current model in {settings.model_dir}; train one first or pass --version")
    if not is_version(settings.model_dir, version):
        names = [m.get("version") for m in list_versions(settings.model_dir)][-5:]
        known = f"; versions there: {', '.join(map(str, names))}" if names else ""
        raise DataError(f"model version {version!r} not found in {settings.model_dir}{known}")
    metrics = read_metrics(settings.model_dir, version)
    if metrics is None:
        raise ModelError(f"model version {version} has no metrics.json; train a new version to evaluate it")
    print(json.dumps(strict_json(metrics), ensure_ascii=False, indent=2, allow_nan=False))
    return 0


@command("serve-metrics")
def _cmd_serve_metrics(args: argparse.Namespace) -> int:
    from routing_core.metrics_server import serve

    settings = _settings(args)
    serve(settings.model_dir, host=args.host, port=args.port)
    return 0


# --- predict ------------------------------------------------------------------------

@command("predict")
def _cmd_predict(args: argparse.Namespace) -> int:
    from routing_core.predict import PredictionOptions, Predictor
    from routing_core.registry import current_version, load_bundle
    from routing_core.sources import load_views
    from routing_core.train import ensure_model

    item_cd = None
    if args.item is not None:
        item_cd = unicodedata.normalize("NFKC", args.item).strip()
        if not item_cd:
            raise DataError("--item is empty; give an existing ITEM_CD")
    elif not args.items_file.strip():
        raise DataError("--items-file is empty; give the path of a CSV, XLSX or Parquet file")
    settings = _settings(args)
    options = PredictionOptions.from_settings(settings, top_k=args.top, lot_size=args.lot_size)
    loaded = load_views(settings)
    if current_version(settings.model_dir) is None:
        # Said on stderr because a mistyped --models folder would otherwise get a new model silently.
        print(f"no model in {settings.model_dir}: training a first one from {settings.data_dir}", file=sys.stderr)
    ensure_model(settings)
    bundle = load_bundle(settings.model_dir)
    if bundle.manifest.get("data_fingerprint") != loaded.fingerprint:
        logger.warning(
            "model %s was trained on other data than %s; items are looked up in that folder and "
            "predicted from the model's items (retrain with `train --data` to use this folder's routings)",
            bundle.version, settings.data_dir,
        )
    predictor = Predictor(bundle)
    if item_cd is not None:
        result = _predict_existing(predictor, loaded.views.items, item_cd, options)
    else:
        from routing_core.sources import read_item_list

        new_items, report = read_item_list(Path(args.items_file))
        for note in report.notes:
            logger.warning("%s", note)
        if report.rejected is not None and report.rejected.height:
            for row in report.rejected.head(50).iter_rows(named=True):
                logger.warning("item list row %s left out: %s", row.get("row"), row.get("reason"))
        result = predictor.predict_attributes(new_items, options)
    if args.format == "json":
        payload = result.to_dicts()
        text = json.dumps(payload[0] if item_cd is not None else payload, ensure_ascii=False, indent=2, allow_nan=False)
        print(text)
    else:
        from routing_core.predict import result_rows
        from routing_core.tables import escape_formula_text

        sys.stdout.write(escape_formula_text(result_rows(result)).write_csv())
    return 0


def _predict_existing(predictor, items, code: str, options):
    """Predict an item of the data folder by its normalised code when the model has it, else from its attributes."""
    import polars as pl

    if predictor.has_item(code):
        return predictor.predict_items([code], options)
    row = items.filter(pl.col("ITEM_CD") == code)
    if row.height == 0:
        raise DataError(f"item code not found in the item master: {code}")
    return predictor.predict_attributes(row, options)


# --- times --------------------------------------------------------------------------

@command("times")
def _cmd_times(args: argparse.Namespace) -> int:
    from routing_core.sources import load_views
    from routing_core.timeagg import times_table

    loaded = load_views(_settings(args))
    try:
        sys.stdout.write(times_table(loaded.views, args.by, args.format))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    from routing_core.timeagg import MAX_LOT_SIZE

    parser = argparse.ArgumentParser(prog="python -m routing_core", description="Routing ML command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="generate the sample ERP data set (three Parquet views)")
    p.add_argument("--items", type=int, default=20_000, help="number of items (default 20000)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")

    p = sub.add_parser("train", help="train a model version from a data folder")
    p.add_argument("--data", required=True, help="folder with the three ERP view files")
    p.add_argument("--models", help="model folder (default: ROUTING_MODEL_DIR or ./models)")
    p.add_argument("--no-promote", action="store_true", help="save the version without making it current")

    p = sub.add_parser("metrics", help="print a model version's evaluation metrics as JSON")
    p.add_argument("--version", help="name of a version folder in the model folder (default: the current one)")
    p.add_argument("--models", help="model folder (default: ROUTING_MODEL_DIR or ./models)")

    p = sub.add_parser("serve-metrics", help="serve the current model's metrics for Prometheus at /metrics")
    p.add_argument("--port", type=int, default=9108, help="TCP port (default 9108)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--models", help="model folder (default: ROUTING_MODEL_DIR or ./models)")

    p = sub.add_parser("predict", help="predict routings for an item or a file of new items")
    p.add_argument("--data", required=True, help="folder with the three ERP view files")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--item", help="existing ITEM_CD")
    target.add_argument("--items-file", help="CSV/XLSX/Parquet of new items with item-master columns")
    p.add_argument("--top", type=int, help="number of similar items to search (top-K)")
    p.add_argument("--lot-size", type=float,
                   help=f"lot size Q in pieces for the lead time, greater than 0 and at most {MAX_LOT_SIZE:,}")
    p.add_argument("--format", choices=["json", "csv"], default="json", help="output format (default json)")
    p.add_argument("--models", help="model folder (default: ROUTING_MODEL_DIR or ./models)")

    p = sub.add_parser("times", help="aggregate planned and actual times of the active routings")
    p.add_argument("--data", required=True, help="folder with the three ERP view files")
    p.add_argument("--by", choices=["RES_CD", "JOB_CD", "ITEM_CD"], default="RES_CD", help="group column (default RES_CD)")
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="output format (default csv)")

    for extend in _PARSER_EXTENSIONS:
        extend(sub)
    return parser


# Other modules add subcommands here: each entry receives the subparsers object.
_PARSER_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ModelError, RoutingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OverflowError) as exc:
        # Arguments that argparse accepts but a function rejects (sizes, ports, lot sizes).
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
