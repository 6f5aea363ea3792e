"""Model versions on disk: ``models/<version>/`` folders, their manifests and the ``current`` pointer.

A version folder contains the encoder (skops), the FAISS index (bytes), parquet
tables (indexed items, item attributes, routings, signatures), ``manifest.json``
(sha256 of every artifact, schema version, library versions, data fingerprint,
created_at) and, after evaluation, ``metrics.json``. New versions are written to
a temporary folder and renamed into place; ``models/current`` is a one-line file
naming the active version, replaced atomically with ``os.replace``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from routing_core.errors import ModelCompatibilityError, ModelError
from routing_core.features import ItemEncoder
from routing_core.index import ItemIndex

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CURRENT_POINTER = "current"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
ENCODER_FILE = "encoder.skops"
INDEX_FILE = "index.faiss"
TABLE_FILES = {
    "index_items": "index_items.parquet",  # row, ITEM_CD, signature_id
    "items": "items.parquet",  # every item of the master: ITEM_CD, ITEM_NM, features, has_routing
    "routings": "routings.parquet",  # operations of the indexed items' active routings
    "signatures": "signatures.parquet",  # signature_id, signature (list of JOB_CD)
}
# Libraries whose version must match exactly for saved artifacts to be trusted.
PINNED_LIBRARIES = ("scikit-learn", "skops", "faiss-cpu", "numpy")
REPORTED_LIBRARIES = (*PINNED_LIBRARIES, "polars", "streamlit", "rapidfuzz")


def library_versions(names: tuple[str, ...] = REPORTED_LIBRARIES) -> dict[str, str | None]:
    """Return installed versions of ``names`` (None when a package is absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def new_version_name(now: datetime | None = None) -> str:
    """Return a sortable, unique version name such as ``20261204-201500-a1b2c3``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def strict_json(value: Any) -> Any:
    """Return ``value`` with non-finite floats replaced by None and numpy scalars as Python values."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: Any) -> None:
    """Write strict JSON (no NaN/Infinity) atomically."""
    text = json.dumps(strict_json(payload), ensure_ascii=False, indent=2, allow_nan=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class ModelBundle:
    """Everything prediction needs, loaded from one version folder. Treat as read-only."""

    version: str
    encoder: ItemEncoder
    index: ItemIndex
    index_items: pl.DataFrame
    items: pl.DataFrame
    routings: pl.DataFrame
    signatures: pl.DataFrame
    manifest: dict[str, Any]
    metrics: dict[str, Any] | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def save_bundle(
    bundle: ModelBundle,
    model_dir: Path,
    *,
    data_fingerprint: str,
    metrics: dict[str, Any] | None = None,
    promote: bool = True,
    extra_manifest: dict[str, Any] | None = None,
) -> Path:
    """Write ``bundle`` as ``model_dir/<bundle.version>`` and optionally make it current.

    Files go to a hidden temporary folder first and the folder is renamed into
    place, so an interrupted save leaves no partial version behind.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / bundle.version
    if final.exists():
        raise ModelError(f"model version {bundle.version} already exists in {model_dir}")
    staging = model_dir / f".tmp-{bundle.version}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()

    bundle.encoder.save(staging / ENCODER_FILE)
    (staging / INDEX_FILE).write_bytes(bundle.index.to_bytes())
    for key, filename in TABLE_FILES.items():
        getattr(bundle, key).write_parquet(staging / filename)

    artifacts = [ENCODER_FILE, INDEX_FILE, *TABLE_FILES.values()]
    manifest = {
        "version": bundle.version,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "data_fingerprint": data_fingerprint,
        "libraries": library_versions(),
        "n_items": bundle.items.height,
        "n_indexed_items": bundle.index.size,
        "n_routing_rows": bundle.routings.height,
        "dimension": bundle.encoder.dimension_,
        "features": bundle.encoder.used_features_,
        "missing_features": bundle.encoder.missing_features_,
        "index_kind": bundle.index.kind,
        "sha256": {name: _sha256(staging / name) for name in artifacts},
        **(extra_manifest or {}),
    }
    write_json(staging / MANIFEST, manifest)
    if metrics is not None:
        write_json(staging / METRICS, {**metrics, "model_version": bundle.version})

    os.replace(staging, final)
    logger.info("saved model version %s to %s", bundle.version, final)
    if promote:
        set_current(model_dir, bundle.version)
    return final


def set_current(model_dir: Path, version: str) -> None:
    """Point ``models/current`` at ``version`` atomically."""
    model_dir = Path(model_dir)
    if not (model_dir / version / MANIFEST).is_file():
        raise ModelError(f"model version {version} not found in {model_dir}")
    tmp = model_dir / f".{CURRENT_POINTER}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    os.replace(tmp, model_dir / CURRENT_POINTER)
    logger.info("current model is now %s", version)


def current_version(model_dir: Path) -> str | None:
    """Return the active version name, or None when no model has been promoted."""
    pointer = Path(model_dir) / CURRENT_POINTER
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    return name or None


def is_version(model_dir: Path, name: str) -> bool:
    """Return whether ``name`` is a version folder of ``model_dir``: one folder name with a manifest.

    A path (``other/20261204-201500-a1b2c3``, ``..``), a hidden name or a folder
    that resolves outside ``model_dir`` is not a version.
    """
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
        return False
    model_dir = Path(model_dir)
    folder = model_dir / name
    if not (folder / MANIFEST).is_file():
        return False
    return folder.resolve().parent == model_dir.resolve()


def list_versions(model_dir: Path) -> list[dict[str, Any]]:
    """Return the manifests of every complete version, oldest first by created_at."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    manifests = []
    for folder in model_dir.iterdir():
        manifest_path = folder / MANIFEST
        if folder.name.startswith(".") or not manifest_path.is_file():
            continue
        try:
            manifests.append(json.loads(manifest_path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("skipping unreadable manifest %s: %s", manifest_path, exc)
    return sorted(manifests, key=lambda m: (m.get("created_at", ""), m.get("version", "")))


def read_metrics(model_dir: Path, version: str) -> dict[str, Any] | None:
    """Return a version's metrics.json, or None when it has none."""
    path = Path(model_dir) / version / METRICS
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_metrics(model_dir: Path, version: str, metrics: dict[str, Any]) -> None:
    """Write a version's metrics.json (strict JSON)."""
    write_json(Path(model_dir) / version / METRICS, {**metrics, "model_version": version})


def manifest_hash(model_dir: Path, version: str | None = None) -> str | None:
    """Return sha256 of a version's manifest (the current one by default): the cache key of a loaded model."""
    version = version or current_version(model_dir)
    if version is None:
        return None
    path = Path(model_dir) / version / MANIFEST
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_bundle(model_dir: Path, version: str | None = None, *, verify: bool = True) -> ModelBundle:
    """Load a version (the current one by default), checking hashes and library versions.

    Raises ModelError when there is no model, and ModelCompatibilityError (its
    message asks for a retrain) when files changed or pinned libraries differ.
    """
    model_dir = Path(model_dir)
    version = version or current_version(model_dir)
    if version is None:
        raise ModelError(f"no trained model in {model_dir}; train one first")
    folder = model_dir / version
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"model version {version} not found in {model_dir}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))

    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ModelCompatibilityError(
            f"model {version} has schema version {manifest.get('schema_version')}, expected {SCHEMA_VERSION}; retrain"
        )
    saved_libraries = manifest.get("libraries", {})
    installed = library_versions(PINNED_LIBRARIES)
    differing = [f"{n} {saved_libraries.get(n)} → {installed[n]}" for n in PINNED_LIBRARIES if saved_libraries.get(n) != installed[n]]
    if differing:
        raise ModelCompatibilityError(f"model {version} was saved with other library versions ({'; '.join(differing)}); retrain")
    if verify:
        for name, expected in manifest.get("sha256", {}).items():
            path = folder / name
            if not path.is_file():
                raise ModelCompatibilityError(f"model {version} is missing {name}; retrain")
            if _sha256(path) != expected:
                raise ModelCompatibilityError(f"model {version}: {name} does not match its manifest hash; retrain")

    tables = {key: pl.read_parquet(folder / filename) for key, filename in TABLE_FILES.items()}
    encoder = ItemEncoder.load(folder / ENCODER_FILE)
    index = ItemIndex.from_bytes((folder / INDEX_FILE).read_bytes(), tables["index_items"].get_column("ITEM_CD").to_numpy())
    return ModelBundle(
        version=version,
        encoder=encoder,
        index=index,
        manifest=manifest,
        metrics=read_metrics(model_dir, version),
        path=folder,
        **tables,
    )
