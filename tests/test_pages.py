"""AppTest of the prediction, time analysis and data pages on a small generated sample."""

import io
import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from routing_core.config import load_settings
from routing_core.train import train_and_save
from tests.app_env import sample_app_env

APP = os.path.join(os.path.dirname(__file__), os.pardir, "app.py")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Sample data of 600 items and a trained model, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("pages")
    values = sample_app_env(root)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in values.items():
            mp.setenv(key, value)
        train_and_save(load_settings())
        yield values


@pytest.fixture()
def app(env, monkeypatch) -> AppTest:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    return at


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    assert not at.exception
    return at


def test_prediction_page_is_korean(app):
    assert app.title[0].value == "라우팅 예측"


def test_pick_item_shows_candidate_tabs(app):
    routed = app.session_state["_keep.predict.item"]
    assert routed
    [b for b in app.button if b.label == "라우팅 예측"][0].click()
    app.run()
    assert not app.exception
    assert len(app.tabs) >= 1
    assert app.tabs[0].label.startswith("후보 1")
    assert any("근거 품목" in m.value for m in app.markdown)


def test_language_switch_to_english(app):
    [b for b in app.button if b.label == "라우팅 예측"][0].click()
    app.run()
    assert app.tabs[0].label.startswith("후보 1")
    # The sidebar selectbox writes this key. AppTest drops sidebar elements drawn
    # before st.navigation from its tree after a rerun, so the key is set directly.
    app.session_state["lang"] = "en"
    app.run()
    assert not app.exception
    assert app.title[0].value == "Routing prediction"
    assert app.tabs[0].label.startswith("Candidate 1")
    assert any("Supporting items" in m.value for m in app.markdown)


def test_selection_survives_page_switch(app):
    app.text_input(key="predict.search").set_value("0")
    app.run()
    _open(app, "pages/data.py")
    _open(app, "pages/predict.py")
    assert app.text_input(key="predict.search").value == "0"


def test_data_page_shows_validation_report(app):
    at = _open(app, "pages/data.py")
    assert at.title[0].value == "데이터"
    labels = [m.label for m in at.metric]
    assert "품목" in labels
    assert any(h.value == "검증 보고서" for h in at.subheader)
    # Notes and the source line come from the core in English and are shown in Korean.
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "라우팅이 없는 품목" in text
    assert "샘플 데이터" in text
    assert "items have no routing" not in text


def test_data_page_without_unixodbc(app, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyodbc", None)  # import pyodbc now raises ImportError
    at = _open(app, "pages/data.py")
    warnings = " ".join(w.value for w in at.warning)
    assert "ODBC를 사용할 수 없습니다" in warnings
    assert "apt-get install" in warnings
    assert at.metric  # the sample source still works


def test_time_page_filters_change_table(app):
    at = _open(app, "pages/times.py")
    before = at.dataframe[-1].value
    resources = sorted(before[before.columns[0]].dropna().tolist())
    at.multiselect(key="times.resources").set_value(resources[:1])
    at.run()
    assert not at.exception
    after = at.dataframe[-1].value
    assert len(after) < len(before)


def test_time_page_empty_selection_message(app):
    at = _open(app, "pages/times.py")
    at.multiselect(key="times.resources").set_value([sorted(at.multiselect(key="times.resources").options)[0]])
    at.radio(key="times.inside@ko").set_value("N")
    at.multiselect(key="times.materials").set_value([at.multiselect(key="times.materials").options[0]])
    at.multiselect(key="times.part_types").set_value([at.multiselect(key="times.part_types").options[-1]])
    at.run()
    assert not at.exception
    assert any("선택한 조건에 맞는 라우팅이 없습니다" in i.value for i in at.info)


def test_time_page_download_equals_table(app):
    at = _open(app, "pages/times.py")
    shown = pl.from_pandas(at.dataframe[-1].value)
    buttons = at.get("download_button")
    csv_bytes = buttons[1].proto.url  # AppTest exposes the media URL, not bytes
    assert csv_bytes
    # Rebuild the bytes the page serves and compare them with the displayed table.
    from routing_core.tables import to_csv_bytes

    served = pl.read_csv(io.BytesIO(to_csv_bytes(shown)))
    assert served.shape == shown.shape
    assert served.columns == shown.columns


def _predict(at: AppTest, item_cd: str | None = None) -> str:
    """Pick ``item_cd`` (or keep the first listed item), press 라우팅 예측 and return the item predicted."""
    if item_cd is not None:
        at.text_input(key="predict.search").set_value(item_cd).run()
        at.selectbox(key="predict.item").set_value(item_cd).run()
    chosen = at.selectbox(key="predict.item").value
    [b for b in at.button if b.label == "라우팅 예측"][0].click()
    at.run()
    assert not at.exception
    return chosen


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


@pytest.fixture(scope="module")
def subcontracted_item(env) -> str:
    """Return an item whose first candidate has a subcontracted operation with MFG_LT days."""
    from routing_core.predict import PredictionOptions, Predictor
    from routing_core.registry import load_bundle

    settings = load_settings()
    predictor = Predictor(load_bundle(settings.model_dir))
    routings = predictor.bundle.routings
    codes = routings.filter(pl.col("MFG_LT").fill_null(0) > 0).get_column("ITEM_CD").unique().sort().to_list()
    result = predictor.predict_items(codes, PredictionOptions.from_settings(settings))
    first = result.candidates.filter(pl.col("rank") == 1).join(result.operations, on=["query", "candidate_id"])
    days = first.group_by("query").agg(pl.col("mfg_lt").fill_null(0).sum().alias("days")).filter(pl.col("days") > 0)
    assert days.height, "the sample has no item whose first candidate is subcontracted"
    query = days.sort("query").get_column("query")[0]
    return result.queries.filter(pl.col("query") == query).get_column("item_cd")[0]


def test_subcontract_days_shown_beside_lead_time(app, subcontracted_item):
    _predict(app, subcontracted_item)
    labels = [m.label for m in app.metric]
    assert "리드타임 (로트 1개)" in labels
    assert "외주 포함 합계" in labels
    captions = " ".join(_texts(app.caption))
    assert "외주 리드타임" in captions
    assert "합계 = 리드타임(분)을 24시간 기준 일수로 바꾼 값" in captions
    operations = next(df.value for df in app.dataframe if "후대기(분)" in df.value.columns)
    assert "제조LT(일)" in operations.columns
    assert operations["제조LT(일)"].max() > 0


def test_total_days_add_lead_time_and_mfg_lt(app, subcontracted_item):
    _predict(app, subcontracted_item)
    lead = next(m for m in app.metric if m.label == "리드타임 (로트 1개)")
    total = next(m for m in app.metric if m.label == "외주 포함 합계")
    operations = next(df.value for df in app.dataframe if "후대기(분)" in df.value.columns)
    minutes = float(lead.value.replace(",", "").removesuffix("분"))
    expected = minutes / 1440 + operations["제조LT(일)"].sum()
    assert total.value == f"약 {expected:,.1f}일"


def test_routing_on_record_uses_candidate_labels(app):
    _predict(app)
    columns = [list(df.value.columns) for df in app.dataframe]
    on_record = [c for c in columns if "준비(분)" in c and "근거 수" not in c]
    assert on_record, columns
    assert on_record[0][:4] == ["공정순서", "작업코드", "작업명", "자원코드"]
    # The editor keeps ERP column names and labels them through its column configuration.
    shown = {name for c in columns if "TIME_UNIT" not in c for name in c}
    assert not {"PROC_SEQ", "setup_min", "run_min_per_piece", "queue_min", "wait_min", "move_min"} & shown


def test_tables_show_missing_values_as_dash(app):
    _predict(app)
    tables = app.dataframe
    assert tables
    # The prediction page's tables, not the problems table that basket.py draws.
    shown = [t for t in tables if t.proto.placeholder]
    assert len(shown) >= 3
    assert {t.proto.placeholder for t in shown} == {"—"}


def test_result_hidden_after_other_item(app):
    first = _predict(app)
    assert app.tabs
    other = next(code for code in app.selectbox(key="predict.item").options if code.split(" — ")[0] != first)
    app.selectbox(key="predict.item").set_value(other.split(" — ")[0]).run()
    assert not app.exception
    assert not app.tabs
    assert any("입력이 바뀌었습니다" in text and first in text for text in _texts(app.info))
    # Back to the predicted item: its result comes back.
    app.selectbox(key="predict.item").set_value(first).run()
    assert app.tabs
    assert not any("입력이 바뀌었습니다" in text for text in _texts(app.info))


def test_result_hidden_in_new_item_mode(app):
    _predict(app)
    app.radio(key="predict.mode@ko").set_value("new").run()
    assert not app.exception
    assert not app.tabs
    assert any("입력이 바뀌었습니다" in text for text in _texts(app.info))


def test_result_hidden_after_lot_size_change(app):
    _predict(app)
    app.number_input(key="predict.lot_size").set_value(20.0).run()
    assert not app.tabs
    assert any("입력이 바뀌었습니다" in text for text in _texts(app.info))


def test_result_hidden_after_model_change(app):
    _predict(app)
    stored = app.session_state["predict.result"]
    # Stand in for a promotion by another user: the stored result belongs to an older version.
    stored["input"] = (*stored["input"][:-1], "20200101-000000-old")
    stored["version"] = "20200101-000000-old"
    app.run()
    assert not app.exception
    assert not app.tabs
    assert any("사용 모델이 바뀌었습니다 (20200101-000000-old →" in text for text in _texts(app.warning))
    assert not any("입력이 바뀌었습니다" in text for text in _texts(app.info))


def test_editor_shows_edited_lead_time(app):
    _predict(app)
    label = "편집한 라우팅의 리드타임 (로트 1개)"
    before = next(m for m in app.metric if m.label == label)
    assert not before.delta
    assert any("예측한 라우팅과 같습니다" in c for c in _texts(app.caption))
    setup = [w for w in app.number_input if (w.key or "").startswith("editor.form.") and w.key.endswith(".SETUP_TIME")][0]
    setup.set_value((setup.value or 0.0) + 15.0)
    [b for b in app.button if b.label == "적용"][0].click()
    app.run()
    assert not app.exception
    after = next(m for m in app.metric if m.label == label)
    assert after.delta == "+15분 (예측 대비)"
    minutes = float(after.value.replace(",", "").removesuffix("분"))
    assert minutes == pytest.approx(float(before.value.replace(",", "").removesuffix("분")) + 15, abs=1)


def test_model_data_shown_on_prediction_page(app):
    captions = " ".join(_texts(app.caption))
    assert "학습 데이터: 샘플 데이터" in captions
    assert not any("다른 데이터로 학습" in w for w in _texts(app.warning))


@pytest.fixture(scope="module")
def other_data(env, tmp_path_factory):
    """A folder with the sample's first 400 items and their routings: other data than the model's."""
    source, folder = Path(env["ROUTING_DATA_DIR"]), tmp_path_factory.mktemp("other_data")
    items = pl.read_parquet(source / "BI_ITEM_INFO_VIEW.parquet").head(400)
    items.write_parquet(folder / "BI_ITEM_INFO_VIEW.parquet")
    for name in ("BI_ROUTING_VIEW", "BI_WORK_ORDER_RESULTS"):
        rows = pl.read_parquet(source / f"{name}.parquet")
        rows.filter(pl.col("ITEM_CD").is_in(items.get_column("ITEM_CD").implode())).write_parquet(folder / f"{name}.parquet")
    return folder


def test_other_session_data_warns_on_prediction_page(app, other_data):
    app.session_state["settings.source_overrides"] = {"data_source": "files", "data_dir": other_data}
    app.run()
    assert not app.exception
    warnings = " ".join(_texts(app.warning))
    assert "사용 모델은 이 세션과 다른 데이터로 학습했습니다" in warnings
    assert "샘플 데이터" in warnings
    assert other_data.name in warnings.replace("\\", "")


def test_time_page_job_chart_names_operations(app):
    at = _open(app, "pages/times.py")
    charts = at.get("plotly_chart")
    job_chart = json.loads(charts[1].proto.spec)
    labels = job_chart["data"][0]["x"]
    assert labels
    # "M90-1 세척": the code followed by the operation name.
    assert all(" " in label for label in labels), labels


def test_time_page_subcontract_selection_message(app):
    at = _open(app, "pages/times.py")
    at.radio(key="times.inside@ko").set_value("N").run()
    assert not at.exception
    infos = " ".join(_texts(at.info))
    assert "작업실적 가공시간이 없" in infos
    # No chart draws an empty "actual" series.
    for chart in at.get("plotly_chart"):
        names = [trace.get("name") for trace in json.loads(chart.proto.spec)["data"]]
        assert "실제" not in names


def test_time_page_job_table_has_names(app):
    at = _open(app, "pages/times.py")
    at.selectbox(key="times.by").set_value("JOB_CD").run()
    table = at.dataframe[-1].value
    assert list(table.columns[:2]) == ["작업코드", "작업명"]
    assert table["작업명"].notna().all()
    assert at.dataframe[-1].proto.placeholder == "—"


def test_time_page_english_labels(app):
    at = _open(app, "pages/times.py")
    at.session_state["lang"] = "en"
    at.run()
    assert not at.exception
    assert at.multiselect(key="times.resources").label == "Resource"
    headers = [m.value for m in at.markdown]
    assert any("per job" in h for h in headers)
    assert not any("JOB_CD" in h for h in headers)


def test_english_operation_tables_use_labels(app):
    _predict(app)
    app.session_state["lang"] = "en"
    app.run()
    assert not app.exception
    operations = next(df.value for df in app.dataframe if "Move" in df.value.columns)
    assert list(operations.columns[:6]) == ["Op. no.", "Job code", "Job name", "Resource", "Resource name", "In-house"]
    support = next(df.value for df in app.dataframe if "Similarity" in df.value.columns)
    assert list(support.columns[:2]) == ["Item code", "Item name"]


def test_unreadable_session_data_keeps_page(app, tmp_path):
    app.session_state["settings.source_overrides"] = {"data_source": "files", "data_dir": tmp_path / "missing"}
    app.run()
    assert not app.exception
    assert not app.error
    assert any("이 세션의 데이터를 읽지 못해" in c for c in _texts(app.caption))
    _predict(app)
    assert app.tabs


def test_time_page_all_columns_labelled(app):
    at = _open(app, "pages/times.py")
    at.toggle(key="times.all_columns").set_value(True).run()
    assert not at.exception
    headers = list(at.dataframe[-1].value.columns)
    assert "표준 이동 합계(분)" in headers
    assert "실제 준비 p90(분)" in headers
    assert not [h for h in headers if h.startswith(("planned_", "actual_", "n_"))]
