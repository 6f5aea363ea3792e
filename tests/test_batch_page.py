"""AppTest of the batch prediction page and of the error display on a small generated sample."""

from __future__ import annotations

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from pages.batch import LOW_SIMILARITY
from tests.app_env import open_app, trained_sample_env

TIMEOUT = 240  # seconds

# The header row of the new-item form's labels, as a user typed it in Korean Excel.
FORM_LABEL_CSV = (
    "품목코드,품목명,부품유형,품목유형,재질,외경(mm),내경(mm),두께(mm),표준품 여부,원자재 종류,씰타입그룹,내측 씰타입\n"
    "NB-0001,회전링 SiC Ø60,FACE,반제품,SiC/SiC,60,45,10,N,SiC,SINGLE,CS1\n"
    "NB-0002,고정링 카본 Ø80,FACE,반제품,CARBON-SB,80,62,12,Y,CARBON,SINGLE,CS2\n"
    "NB-0005,O링 FKM,ELASTOMER,원자재,FKM,75mm,70,3.5,Y,RUBBER,,\n"
).encode("cp949")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Sample data of 600 items and a trained model, shared by the tests of this module."""
    return trained_sample_env(tmp_path_factory.mktemp("batch_page"))


@pytest.fixture
def app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = open_app(env, monkeypatch, TIMEOUT)
    return at


def _upload(app: AppTest, name: str, data: bytes) -> AppTest:
    app.switch_page("pages/batch.py").run()
    assert not app.exception, app.exception
    app.file_uploader(key="batch.upload").upload(name, data).run()
    assert not app.exception, app.exception
    return app


def _click(app: AppTest, label_start: str) -> None:
    found = [b for b in app.button if b.label.startswith(label_start)]
    assert found, f"no button {label_start!r}; have {[b.label for b in app.button]}"
    found[0].click()
    app.run()
    assert not app.exception, app.exception


def _button(app: AppTest, label_start: str):
    found = [b for b in app.button if b.label.startswith(label_start)]
    assert found, f"no button {label_start!r}; have {[b.label for b in app.button]}"
    return found[0]


def _texts(elements) -> str:
    return " ".join(e.value for e in elements)


def _unescape(text: str) -> str:
    return text.replace("\\", "")


def test_form_labels_read_as_columns(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)

    items = app.session_state["batch.state"]["items"]
    assert items.get_column("OUTDIAMETER").to_list() == [60.0, 80.0, None]
    assert items.get_column("STANDARD_YN").to_list() == ["N", "Y", "Y"]
    assert items.get_column("IN_SEALTYPE_CD").to_list() == ["CS1", "CS2", None]
    notes = _unescape(_texts(app.markdown))
    assert "외경(mm) -> OUTDIAMETER" in notes
    assert "쓰지 않는 컬럼" not in _unescape(_texts(app.warning))


def test_dropped_columns_listed(app: AppTest) -> None:
    _upload(app, "batch.csv", "품목코드,재질,비고,외경(inch)\nN-1,SiC,급함,3\n".encode("cp949"))

    warnings = _unescape(_texts(app.warning))
    assert "쓰지 않는 컬럼 2개는 제외함" in warnings
    assert "비고" in warnings
    assert "외경(inch)" in warnings
    assert "신규 품목 입력란의 이름" in warnings


def test_preview_uses_labels_and_dash(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)

    preview = app.dataframe[-1]
    assert "외경(mm) (OUTDIAMETER)" in preview.value.columns
    assert "품목코드 (ITEM_CD)" in preview.value.columns
    assert "도면번호 (DRAW_NO)" not in preview.value.columns  # empty in the file
    assert preview.proto.placeholder == "—"
    assert any("값이 없는 열" in c.value for c in app.caption)


def test_changed_value_names_row_and_value(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)

    assert any("값을 고쳤거나 확인이 필요한 곳 1건" in w.value for w in app.warning)
    tables = [d.value for d in app.dataframe if "원래 값" in d.value.columns]
    assert tables, "no table of changed values"
    row = tables[0].iloc[0]
    assert row["행 번호"] == 3
    assert row["품목코드"] == "NB-0005"
    assert row["원래 값"] == "OUTDIAMETER=75mm"
    assert row["규칙 코드"] == "number_set_null"
    assert row["규칙 설명"] == "숫자가 아닌 값을 빈 값으로 처리"


def test_low_similarity_rows_unticked(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)
    _click(app, "품목 3개 예측")

    table = app.data_editor[0].value
    best = app.session_state["batch.state"]["result"].candidates.filter(pl.col("rank") == 1).sort("query")
    low = [s < LOW_SIMILARITY for s in best.get_column("best_similarity").to_list()]
    assert any(low), "the O-ring row should have a low best similarity on the sample"
    assert table["select"].tolist() == [not x for x in low]
    assert table["check"].tolist() == ["⚠" if x else "" for x in low]
    assert any("선택을 해제했습니다" in w.value for w in app.warning)
    assert _button(app, "선택한").label == f"선택한 {low.count(False)}개 담기"
    # Adding every row waits until the user agrees to take the ⚠ rows too.
    assert _button(app, "전체").disabled
    confirm = next(c for c in app.checkbox if c.key.startswith("batch.add_all_confirm."))
    confirm.check().run()
    assert not _button(app, "전체").disabled


def test_missing_model_attributes_named(app: AppTest) -> None:
    _upload(app, "batch.csv", "품목코드,재질\nNB-1,SiC\n".encode())
    infos = " ".join(i.value for i in app.info)
    assert "파일에 없는 예측용 속성" in infos
    assert "ITEM_SPEC" not in infos


def test_candidate_operations_shown(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)
    _click(app, "품목 3개 예측")

    state = app.session_state["batch.state"]
    picker = next(s for s in app.selectbox if (s.key or "").startswith("batch.preview."))
    low_query = state["result"].candidates.filter(pl.col("best_similarity") < LOW_SIMILARITY).get_column("query")[0]
    assert picker.value == low_query  # the first low-similarity row is shown first
    operations = next(d.value for d in app.dataframe if "작업코드" in d.value.columns)
    expected = state["result"].operations.filter(pl.col("query") == low_query).sort("pos").get_column("job_cd").to_list()
    assert operations["작업코드"].tolist() == expected
    assert any("기준 0.5보다 낮습니다" in w.value for w in app.warning)

    picker.set_value(0).run()
    assert not app.exception, app.exception
    operations = next(d.value for d in app.dataframe if "작업코드" in d.value.columns)
    expected = state["result"].operations.filter(pl.col("query") == 0).sort("pos").get_column("job_cd").to_list()
    assert operations["작업코드"].tolist() == expected


def test_candidate_pick_survives_language_switch(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)
    _click(app, "품목 3개 예측")
    next(s for s in app.selectbox if (s.key or "").startswith("batch.preview.")).set_value(1).run()

    app.session_state["lang"] = "en"
    app.run()
    assert not app.exception, app.exception
    picker = next(s for s in app.selectbox if (s.key or "").startswith("batch.preview."))
    assert picker.value == 1
    assert picker.label == "Item"
    assert "Best similarity" in picker.format_func(1)
    assert "최고 유사도" not in picker.format_func(1)


def test_generated_codes_cannot_be_added(app: AppTest) -> None:
    _upload(app, "nocode.csv", "재질,외경(mm)\nSiC,60\nCARBON,80\n".encode("cp949"))
    _click(app, "품목 2개 예측")

    assert app.data_editor[0].value["select"].tolist() == [False, False]
    assert _button(app, "선택한").disabled
    assert _button(app, "전체").disabled
    assert any("담을 수 없습니다" in w.value for w in app.warning)
    assert "export.basket" not in app.session_state or not app.session_state["export.basket"].routings()


def test_added_message_follows_language(app: AppTest) -> None:
    _upload(app, "batch.csv", FORM_LABEL_CSV)
    _click(app, "품목 3개 예측")
    _click(app, "선택한")
    assert any("장바구니에" in s.value for s in app.success)

    app.session_state["lang"] = "en"
    app.run()
    assert not app.exception, app.exception
    success = _texts(app.success)
    assert success.startswith("Added ")
    assert "장바구니" not in success


def test_unreadable_upload_shows_cause(app: AppTest) -> None:
    _upload(app, "bad.xlsx", b"not a zip")

    error = _unescape(app.error[0].value)
    assert "데이터를 사용할 수 없습니다" in error
    assert "원인 (영문 원문): cannot read bad.xlsx as an Excel workbook" in error
    assert not app.expander, "the cause is not hidden in a collapsed panel"
    assert "Traceback" not in error


def _error_script(kind: str) -> None:
    # Runs inside AppTest, so it imports what it uses.
    from pages.common import show_error
    from routing_core.errors import DataError, SourceUnavailableError
    from routing_core.i18n import Note

    if kind == "note":
        show_error(DataError(Note("view_empty", view="BI_ROUTING_VIEW")))
    elif kind == "source":
        show_error(SourceUnavailableError("ODBC driver 'X' is not installed"))
    elif kind == "rows":
        show_error(DataError("2 rows are invalid", rows=[{"row": 1, "reason": "empty"}, {"row": 2, "reason": None}]))
    else:
        show_error(ValueError("boom"))


@pytest.mark.parametrize(
    ("kind", "lang", "lead", "cause"),
    [
        ("note", "ko", "데이터를 사용할 수 없습니다", "원인: BI_ROUTING_VIEW: 데이터가 없어 빈 뷰로 처리함"),
        ("note", "en", "The data cannot be used", "Cause: BI_ROUTING_VIEW: no data; the view is empty"),
        ("source", "ko", "데이터 소스를 사용할 수 없습니다", "원인 (영문 원문): ODBC driver 'X' is not installed"),
        ("other", "ko", "예기치 않은 오류가 발생했습니다", "원인 (영문 원문): ValueError: boom"),
        ("other", "en", "An unexpected error occurred", "Cause: ValueError: boom"),
    ],
)
def test_error_cause_visible(kind: str, lang: str, lead: str, cause: str) -> None:
    at = AppTest.from_function(_error_script, args=(kind,))
    at.session_state["lang"] = lang
    at.run()

    assert not at.exception, at.exception
    error = _unescape(at.error[0].value)
    assert error.startswith(f"**{lead}")
    assert cause in error
    assert not at.expander


def test_error_rows_table_visible() -> None:
    at = AppTest.from_function(_error_script, args=("rows",))
    at.session_state["lang"] = "ko"
    at.run()

    assert "2 rows are invalid" in _unescape(at.error[0].value)
    reasons = at.dataframe[0].value["reason"]
    assert reasons[0] == "empty"
    assert reasons.isna()[1]
    assert at.dataframe[0].proto.placeholder == "—"



def test_headers_only_upload_shows_cause(app: AppTest) -> None:
    _upload(app, "new_items.csv", "품목코드,재질\n".encode("cp949"))

    error = _unescape(_texts(app.error))
    assert "new_items.csv has no data rows" in error
    assert not any("파일을 올리면" in i.value for i in app.info)


def test_reported_value_listed(app: AppTest) -> None:
    _upload(app, "batch.csv", b"ITEM_CD,OUTDIAMETER,INDIAMETER\nA-1,10,20\n")

    assert any("값을 고쳤거나 확인이 필요한 곳 1건" in w.value for w in app.warning)
    table = next(d.value for d in app.dataframe if "원래 값" in d.value.columns)
    assert table["규칙 코드"].tolist() == ["inner_diameter_not_below_outer"]
    assert table["품목코드"].tolist() == ["A-1"]
    assert table["행 번호"].tolist() == [1]
