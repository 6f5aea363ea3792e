"""Environment for tests that start the app on a small generated sample."""

from __future__ import annotations

from pathlib import Path


def sample_app_env(root: Path) -> dict[str, str]:
    """Return the environment that points the app at a 600-item sample and a model folder under ``root``."""
    return {
        "ROUTING_DATA_SOURCE": "sample",
        "ROUTING_DATA_DIR": str(root / "data"),
        "ROUTING_MODEL_DIR": str(root / "models"),
        "ROUTING_SAMPLE_ITEMS": "600",
        "ROUTING_LANGUAGE": "ko",
    }
