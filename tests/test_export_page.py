"""The prediction editor, the basket and the ERP export page, run in Streamlit's AppTest against a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from routing_core.odbc import create_staging_table_sql
from tests.app_env import sample_app_env
from tests.odbc_servers import SQLITE_DRIVER, require_driver, require_pyodbc, sqlite_connection_string

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 240  # seconds; the first run generates the sample and trains the model
EMPTY_KO = "내보낼 라우팅 데이터가 없습니다."
EMPTY_EN = "There is no routing data to export."


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Data and model folders shared by the module's tests, and a SQLite staging table for the ERP write."""
    root = tmp_path_factory.mktemp("export_page")
    env = sample_app_env(root)
    require_driver(SQLITE_DRIVER)
    pyodbc = require_pyodbc()
    connection_string = sqlite_connection_string(root / "staging.db")
    with pyodbc.connect(connection_string, autocommit=True) as connection:
        connection.cursor().execute(create_staging_table_sql("sqlite", "ROUTING_STAGING"))
    env["ROUTING_ODBC_CONNECTION_STRING"] = connection_string
    env["ROUTING_STAGING_TABLE"] = "ROUTING_STAGING"
    return env


@pytest.fixture
def app(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _button(at: AppTest, label: str | None = None, key_prefix: str | None = None, index: int = 0):
    found = [
        b for b in at.button
        if (label is None or b.label == label) and (key_prefix is None or (b.key or "").startswith(key_prefix))
    ]
    assert found, f"no button {label or key_prefix}; have {[b.label for b in at.button]}"
    return found[index]


def _predict(at: AppTest, item_cd: str | None = None) -> str:
    """Predict on the prediction page for ``item_cd`` (default: the first listed); return the item code."""
    if item_cd is not None:
        at.selectbox(key="predict.item").set_value(item_cd)
    chosen = at.selectbox(key="predict.item").value
    _button(at, "라우팅 예측").click()
    at.run()
    assert not at.exception, at.exception
    return chosen


def _form_input(at: AppTest, kind: str, column: str, index: int = 0):
    widgets = [w for w in getattr(at, kind) if (w.key or "").startswith("editor.form.") and w.key.endswith(f".{column}")]
    assert widgets, f"no {kind} for {column}"
    return widgets[index]


def test_empty_basket_message(app: AppTest) -> None:
    app.switch_page("pages/export.py").run()

    assert not app.exception
    assert EMPTY_KO in _texts(app.warning)
    assert not [b for b in app.button if b.key == "export.write"]

    # AppTest runs only the page script after switch_page, so the language is set in the session directly.
    app.session_state["lang"] = "en"
    app.run()
    assert EMPTY_EN in _texts(app.warning)


def test_editor_rejects_negative_time(app: AppTest) -> None:
    _predict(app)
    _form_input(app, "number_input", "SETUP_TIME").set_value(-5.0)
    _button(app, "적용").click()
    app.run()

    assert not app.exception
    errors = _texts(app.error)
    assert any("고쳐야 할 문제 1건" in e for e in errors), errors
    messages = [str(v) for frame in app.dataframe for v in frame.value.to_numpy().ravel()]
    assert any("준비시간: 0 이상이어야 합니다 (입력: -5.0)" in m for m in messages), messages
    assert _button(app, key_prefix="editor.add.").disabled


def test_editor_rejects_missing_job_code(app: AppTest) -> None:
    _predict(app)
    _form_input(app, "text_input", "JOB_CD").set_value("")
    _button(app, "적용").click()
    app.run()

    assert not app.exception
    messages = [str(v) for frame in app.dataframe for v in frame.value.to_numpy().ravel()]
    assert "작업코드가 비어 있습니다." in messages
    assert _button(app, key_prefix="editor.add.").disabled


def test_two_form_edits_both_persist(app: AppTest) -> None:
    item = _predict(app)
    _form_input(app, "number_input", "SETUP_TIME").set_value(7.0)
    _button(app, "적용").click()
    app.run()
    _form_input(app, "text_input", "RES_CD").set_value("CNC-99")
    _button(app, "적용").click()
    app.run()
    _button(app, key_prefix="editor.add.").click()
    app.run()

    assert not app.exception
    routing = app.session_state["export.basket"].get(item)
    first = routing.operations.row(0, named=True)
    assert first["SETUP_TIME"] == 7.0
    assert first["RES_CD"] == "CNC-99"


def test_export_two_routings(app: AppTest, app_env: dict[str, str]) -> None:
    first = _predict(app)
    _button(app, key_prefix="editor.add.").click()
    app.run()
    # Options are shown as "<ITEM_CD> — <ITEM_NM>".
    second_code = app.selectbox(key="predict.item").options[1].split(" — ")[0]
    second = _predict(app, second_code)
    assert second != first
    _button(app, key_prefix="editor.add.").click()
    app.run()
    assert any("장바구니 2건" in s for s in _texts(app.success))
    basket = app.session_state["export.basket"]
    n_rows = sum(r.operations.height for r in basket.routings())

    app.switch_page("pages/export.py").run()
    assert not app.exception
    # Both items exist in the sample with a routing in use, so the page warns about them.
    assert any("바구니의 품목 2개는 ERP에 사용 중인 라우팅이 이미 있습니다" in w for w in _texts(app.warning))
    assert f"검증 통과: 라우팅 2개, {n_rows}행." in _texts(app.success)
    assert f"라우팅 2개, {n_rows}행. 시간은 분(M) 단위입니다. 내려받는 파일은 이 표와 같습니다." in _texts(app.caption)
    assert _button(app, key_prefix="export.write").disabled

    _button(app, key_prefix="export.dry_run").click()
    app.run()
    assert any(f"{n_rows}행 모두" in s for s in _texts(app.success))
    _button(app, key_prefix="export.write").click()
    app.run()

    assert not app.exception
    written = [s for s in _texts(app.success) if "기록했습니다" in s]
    assert len(written) == 1
    assert f"라우팅 2개, {n_rows}행을 기록했습니다." in written[0]
    pyodbc = require_pyodbc()
    with pyodbc.connect(app_env["ROUTING_ODBC_CONNECTION_STRING"]) as connection:
        stored = connection.cursor().execute('SELECT "ITEM_CD", COUNT(*) FROM ROUTING_STAGING GROUP BY "ITEM_CD" ORDER BY 1').fetchall()
    assert sorted(tuple(r) for r in stored) == sorted(
        (r.item_cd, r.operations.height) for r in basket.routings()
    )
    assert _button(app, key_prefix="export.write").disabled


def test_batch_page_adds_all(app: AppTest) -> None:
    from routing_core.sources import read_item_list

    upload = (
        "품목코드,품목명,부품유형,재질,외경\n"
        "N-001,신규 회전링,FACE,SiC,57\n"
        "N-002,신규 슬리브,METAL,SUS316,48\n"
        ",코드 없음,FACE,SiC,50\n"
    ).encode("cp949")
    items, report = read_item_list(upload, "new_items.csv")
    # The parsed upload is placed where the page keeps it, so this test skips the upload widget.
    app.session_state["batch.state"] = {
        "digest": "test", "file_name": "new_items.csv", "items": items, "report": report,
        "result": None, "version": None, "message": None,
    }
    app.switch_page("pages/batch.py").run()
    assert not app.exception, app.exception
    assert any("제외한 행 1개" in e for e in _texts(app.error))

    _button(app, "품목 2개 예측").click()
    app.run()
    assert not app.exception, app.exception
    _button(app, "전체 2개 담기").click()
    app.run()

    assert not app.exception, app.exception
    assert any("장바구니에 2개를 새로 담고 0개를 교체했습니다" in s for s in _texts(app.success))
    basket = app.session_state["export.basket"]
    assert [r.item_cd for r in basket.routings()] == ["N-001", "N-002"]


def test_form_adds_and_deletes_operation(app: AppTest) -> None:
    item = _predict(app)
    pick = next(s for s in app.selectbox if (s.key or "").startswith("editor.form.pick."))
    n_before = len(pick.options) - 1  # the last option adds an operation
    pick.set_value(-1).run()
    _form_input(app, "text_input", "JOB_CD").set_value("Z99")
    _form_input(app, "text_input", "RES_CD").set_value("RES-Z")
    _form_input(app, "number_input", "SETUP_TIME").set_value(1.0)
    _form_input(app, "number_input", "RUN_TIME").set_value(2.0)
    _button(app, "적용").click()
    app.run()
    assert not app.exception, app.exception
    assert any(f"검사 통과: 공정 {n_before + 1}개." == s for s in _texts(app.success))

    _button(app, "이 공정 삭제").click()
    app.run()
    assert not app.exception, app.exception
    assert any(f"검사 통과: 공정 {n_before}개." == s for s in _texts(app.success))
    _button(app, key_prefix="editor.add.").click()
    app.run()
    assert "Z99" not in app.session_state["export.basket"].get(item).operations["JOB_CD"].to_list()


def _upload(app: AppTest, name: str, data: bytes) -> None:
    app.switch_page("pages/batch.py").run()
    assert not app.exception, app.exception
    app.file_uploader(key="batch.upload").upload(name, data).run()
    assert not app.exception, app.exception


def test_batch_upload_headers_only_shows_error_only(app: AppTest) -> None:
    _upload(app, "new_items.csv", "품목코드,재질\n".encode("cp949"))

    assert app.error, "the upload error is not shown"
    # The cause is shown inside the error box, Markdown-escaped.
    assert "new_items.csv has no data rows" in " ".join(_texts(app.error)).replace("\\", "")
    assert not any("파일을 올리면" in i for i in _texts(app.info))


def test_batch_upload_not_xlsx_is_data_error(app: AppTest) -> None:
    _upload(app, "new_items.xlsx", b"ITEM_CD,PART_TYPE\nA1,FACE\n")

    errors = _texts(app.error)
    assert errors
    assert not any("예기치 않은" in e for e in errors)
    assert "cannot read new_items.xlsx as an Excel workbook" in " ".join(errors).replace("\\", "")


def test_batch_rejected_rows_show_korean_rule(app: AppTest) -> None:
    _upload(app, "new_items.csv", "ITEM_CD,PART_TYPE\nN-1,FACE\nN-2,FACE,EXTRA\n".encode())

    assert any("제외한 행 1개" in e for e in _texts(app.error))
    table = app.dataframe[0].value
    messages = " ".join(str(v) for v in table.to_numpy().ravel())
    assert "CSV 줄의 필드 수가 머리글보다 많음" in messages
    assert "line 3 has 3 fields, header has 2" in messages
