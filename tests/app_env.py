"""Environment for tests that start the app on a small generated sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from routing_core.config import load_settings
from routing_core.train import train_and_save

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def sample_app_env(root: Path) -> dict[str, str]:
    """Return the environment that points the app at a 600-item sample and a model folder under ``root``."""
    return {
        "ROUTING_DATA_SOURCE": "sample",
        "ROUTING_DATA_DIR": str(root / "data"),
        "ROUTING_MODEL_DIR": str(root / "models"),
        "ROUTING_SAMPLE_ITEMS": "600",
        "ROUTING_LANGUAGE": "ko",
    }


def trained_sample_env(root: Path) -> dict[str, str]:
    """Generate the 600-item sample under ``root``, train its first model and return the environment."""
    values = sample_app_env(root)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        train_and_save(load_settings())
    return values


def open_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, timeout: float = 240) -> AppTest:
    """Run the app once in AppTest with ``env`` set; fail on an exception."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(APP, default_timeout=timeout).run()
    assert not at.exception, at.exception
    return at
