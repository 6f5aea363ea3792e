"""Training page in Streamlit's AppTest: train, watch progress, compare, promote and roll back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from routing_core.registry import current_version, list_versions, read_metrics, write_metrics
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
    assert "비교 버전" not in table.columns
    top1 = table[table["지표"] == "Top-1 정확도"].iloc[0]
    assert top1["사용 모델"] == f"{metrics['top1_accuracy'] * 100:.1f}%"
    assert top1["기준선"] == f"{metrics['baseline']['top1_accuracy'] * 100:.1f}%"


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
    assert {"사용 모델", "비교 버전", "차이", "기준선 (비교 버전)"} <= set(comparison.columns)
    assert app.selectbox(key="train.challenger_select").value == new
    promote = app.button(key="train.promote")
    assert promote.label == f"사용 모델로 지정: {new}"
    assert promote.proto.type == "primary"  # the other version is the newer one
    assert any("사용 모델보다 새 버전" in text for text in _texts(app.caption))

    promote.click().run()
    assert not app.exception
    assert current_version(model_dir) == new
    assert any(new in text for text in _texts(app.success))
    # The first model is now the other version: older, labelled as such, and not the primary action.
    assert app.selectbox(key="train.challenger_select").value == first
    promote = app.button(key="train.promote")
    assert promote.label == f"사용 모델로 지정: {first}"
    assert promote.proto.type == "secondary"
    assert any("사용 모델보다 오래된 버전" in text for text in _texts(app.caption))
    assert not any("새 버전" in text and first in text for text in _texts(app.caption) if "오래된" not in text)

    # The rollback list starts on the version saved before the active one.
    rollback = app.selectbox(key="train.rollback_select")
    assert rollback.value == first
    assert app.button(key="train.rollback").disabled
    app.checkbox(key=f"train.rollback_confirm.{first}").check().run()
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
    assert any(f"사용 모델을 그대로 씁니다: {first}" in text for text in _texts(app.success))


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
    # The message is Markdown with escaped punctuation.
    errors = [text.replace("\\", "") for text in _texts(app.error)]
    assert any(holder["started_at"] in text for text in errors)


def test_each_training_becomes_the_challenger(app, tmp_path):
    model_dir = tmp_path / "models"
    app.button(key="train.start").click().run()
    app.button(key="train.start").click().run()
    assert not app.exception
    newest = list_versions(model_dir)[-1]["version"]
    assert app.selectbox(key="train.challenger_select").value == newest
    assert not app.warning  # no widget-state warning from Streamlit


def _difference_colours(app: AppTest) -> list[str]:
    """Return the background colours of the comparison table's cells, one per coloured cell."""
    table = next(e for e in app.dataframe if "차이" in e.value.columns)
    styles = table.proto.arrow_data.styler.styles
    return re.findall(r"background-color: (#[0-9a-f]{6})", styles)


def test_metrics_shown_as_percentages(app):
    table = _table_with(app, "모델 − 기준선")
    rows = table.set_index("지표")
    for metric in ("Top-1 정확도", "리드타임 ±15% 이내", "리드타임 MAPE"):
        assert rows.loc[metric, "사용 모델"].endswith("%"), metric
        assert rows.loc[metric, "모델 − 기준선"].endswith("%p"), metric
    assert not rows.loc["공정 F1", "사용 모델"].endswith("%")
    # The default flat index measures no recall, so the row is left out and a caption explains why.
    assert "인덱스 재현율@10" not in rows.index
    assert any("인덱스 재현율@10은 근사 검색(HNSW) 인덱스일 때만" in text for text in _texts(app.caption))


def test_small_latency_change_not_coloured(app, tmp_path):
    model_dir = tmp_path / "models"
    first = current_version(model_dir)
    app.button(key="train.start").click().run()
    new = list_versions(model_dir)[-1]["version"]
    base = read_metrics(model_dir, first)
    write_metrics(model_dir, first, {**base, "inference_ms_p50": 10.0, "inference_ms_p95": 10.0})
    # The same figures except latency: p50 moves by 0.5 ms (too small), p95 doubles.
    write_metrics(model_dir, new, {**base, "inference_ms_p50": 10.5, "inference_ms_p95": 20.0})
    app.run()
    assert not app.exception
    assert _difference_colours(app) == ["#ffd6d6"]
    rows = _table_with(app, "차이").set_index("지표")
    assert rows.loc["예측 시간 p50 (ms)", "차이"] == "+0.5"
    assert rows.loc["예측 시간 p95 (ms)", "차이"] == "+10.0"


def test_other_data_comparison_warns(app, tmp_path):
    model_dir = tmp_path / "models"
    app.button(key="train.start").click().run()
    new = list_versions(model_dir)[-1]["version"]
    manifest_path = model_dir / new / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["data_fingerprint"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    app.run()
    assert not app.exception
    warnings = " ".join(_texts(app.warning))
    assert "평가 데이터가 다르므로 차이를 그대로 비교할 수 없습니다" in warnings
    assert "000000000000" in warnings
    assert _difference_colours(app) == []
    assert any("두 버전의 데이터가 달라" in text for text in _texts(app.caption))


def test_active_model_data_shown(app):
    captions = " ".join(_texts(app.caption))
    assert "학습 데이터: 샘플 데이터" in captions
    assert not app.warning


def test_comparison_in_english(app, tmp_path):
    app.button(key="train.start").click().run()
    new = list_versions(tmp_path / "models")[-1]["version"]
    app.session_state["lang"] = "en"
    app.run()
    assert not app.exception
    table = _table_with(app, "Metric")
    assert {"Active model", "Other version", "Difference", "Baseline (other)"} <= set(table.columns)
    assert app.button(key="train.promote").label == f"Make active: {new}"
    assert table.set_index("Metric").loc["Lead time MAPE", "Active model"].endswith("%")
