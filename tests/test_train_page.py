"""Training page in Streamlit's AppTest: train, watch progress, compare, promote and roll back."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from routing_core.registry import current_version, list_versions, read_metrics
from tests.app_env import sample_app_env

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 240


@pytest.fixture()
def app(tmp_path, monkeypatch) -> AppTest:
    for name, value in sample_app_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()  # first start: generates the sample and trains the first model
    assert not at.exception
    at.switch_page("pages/train.py").run()
    assert not at.exception
    return at


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def _table_with(app: AppTest, column: str):
    """Return the first table on the page that has ``column`` (AppTest does not keep dataframe keys)."""
    for element in app.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no table with column {column!r}")


def test_first_model_shown_alone(app, tmp_path):
    versions = list_versions(tmp_path / "models")
    assert len(versions) == 1
    assert "학습 및 정확도" in _texts(app.title)
    # Only one version: no challenger to promote, but the trend and version table exist.
    assert not [b for b in app.button if b.key == "train.promote"]
    table = _table_with(app, "사용 중")
    assert table.shape[0] == 1
    assert table.iloc[0]["사용 중"] == "● 사용 중"


def test_first_model_compared_with_baseline(app, tmp_path):
    model_dir = tmp_path / "models"
    metrics = read_metrics(model_dir, current_version(model_dir))
    table = _table_with(app, "모델 − 기준선")
    assert "새 버전" not in table.columns
    top1 = table[table["지표"] == "Top-1 정확도"].iloc[0]
    assert top1["현재 모델"] == f"{metrics['top1_accuracy']:.3f}"
    assert top1["기준선"] == f"{metrics['baseline']['top1_accuracy']:.3f}"


def test_train_compare_promote_and_roll_back(app, tmp_path):
    model_dir = tmp_path / "models"
    first = current_version(model_dir)

    app.button(key="train.start").click().run()
    assert not app.exception
    # Progress: the status box finished and its bar reached 100 %.
    assert app.status[0].label.startswith("학습 완료")
    assert app.progress[0].value == 100
    versions = [v["version"] for v in list_versions(model_dir)]
    assert len(versions) == 2
    new = versions[-1]
    assert current_version(model_dir) == first  # a challenger is not promoted by default
    assert read_metrics(model_dir, new) is not None

    comparison = _table_with(app, "지표")
    assert list(comparison["지표"])[:3] == ["Top-1 정확도", "Top-3 적중률", "Top-5 적중률"]
    assert {"현재 모델", "새 버전", "차이", "기준선 (새 버전)"} <= set(comparison.columns)
    assert app.selectbox(key="train.challenger_select").value == new

    app.button(key="train.promote").click().run()
    assert not app.exception
    assert current_version(model_dir) == new
    assert any(new in text for text in _texts(app.success))

    rollback = app.selectbox(key="train.rollback_select")
    rollback.select(first).run()
    app.button(key="train.rollback").click().run()
    assert not app.exception
    assert current_version(model_dir) == first
    table = _table_with(app, "사용 중")
    active = table[table["사용 중"] == "● 사용 중"]["버전"].tolist()
    assert active == [first]


def test_keep_current_model(app, tmp_path):
    model_dir = tmp_path / "models"
    first = current_version(model_dir)
    app.button(key="train.start").click().run()
    app.button(key="train.keep").click().run()
    assert not app.exception
    assert current_version(model_dir) == first
    assert any("계속 사용" in text for text in _texts(app.success))


def test_version_without_metrics_is_shown(app, tmp_path):
    model_dir = tmp_path / "models"
    (model_dir / current_version(model_dir) / "metrics.json").unlink()
    app.run()
    assert not app.exception
    assert any("평가 지표가 있는 버전이 아직 없습니다" in text for text in _texts(app.info))
    assert _table_with(app, "사용 중").shape[0] == 1


def test_training_in_progress_shows_start_time(app, tmp_path):
    from routing_core.train import training_lock

    with training_lock(tmp_path / "models") as holder:
        app.button(key="train.start").click().run()
    assert not app.exception
    errors = _texts(app.error)
    assert any(holder["started_at"] in text for text in errors)


def test_each_training_becomes_the_challenger(app, tmp_path):
    model_dir = tmp_path / "models"
    app.button(key="train.start").click().run()
    app.button(key="train.start").click().run()
    assert not app.exception
    newest = list_versions(model_dir)[-1]["version"]
    assert app.selectbox(key="train.challenger_select").value == newest
    assert not app.warning  # no widget-state warning from Streamlit
