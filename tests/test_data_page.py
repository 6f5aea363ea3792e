"""AppTest of the data page's validation report and error display on a small generated sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_env import open_app, trained_sample_env

TIMEOUT = 240  # seconds


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Sample data of 600 items and a trained model, shared by the tests of this module."""
    return trained_sample_env(tmp_path_factory.mktemp("data_page"))


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = open_app(env, monkeypatch, TIMEOUT)
    at.switch_page("pages/data.py").run()
    assert not at.exception, at.exception
    return at


def test_rule_table_headers_korean(app: AppTest) -> None:
    rules = app.dataframe[0].value
    assert list(rules.columns) == ["규칙", "규칙 코드", "건수"]
    assert "item_without_routing" in rules["규칙 코드"].tolist()
    assert "라우팅이 없는 품목" in rules["규칙"].tolist()


def test_rule_table_headers_english(app: AppTest) -> None:
    app.session_state["lang"] = "en"
    app.run()
    assert not app.exception, app.exception

    headers = [list(d.value.columns) for d in app.dataframe]
    assert headers[0] == ["Rule", "Rule code", "Count"]
    for columns in headers:
        assert len(columns) == len({c.lower() for c in columns}), f"two columns differ only in case: {columns}"
        assert "rule" not in columns


def test_row_tables_share_labels(app: AppTest) -> None:
    tables = [d for d in app.dataframe if "규칙 설명" in d.value.columns]
    assert len(tables) == 2, "rejected rows and changed-value examples"
    rejected, changed = (t.value for t in tables)
    assert list(rejected.columns) == ["뷰", "행 번호", "품목코드", "규칙 설명", "사유 (원문)", "규칙 코드"]
    assert list(changed.columns) == ["뷰", "행 번호", "품목코드", "규칙 설명", "원래 값", "규칙 코드"]
    for table in tables:
        assert table.proto.placeholder == "—"


def test_missing_folder_shows_cause(app: AppTest, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    app.session_state["settings.source_overrides"] = {"data_source": "files", "data_dir": missing}
    app.run()
    assert not app.exception, app.exception

    error = app.error[0].value.replace("\\", "")
    assert error.startswith("**데이터를 사용할 수 없습니다.")
    assert f"원인 (영문 원문): data folder not found: {missing}" in error
    assert not app.expander
