"""Routing ML Streamlit entry point: language switch, first-start bootstrap and page navigation."""

from __future__ import annotations

import logging

import streamlit as st

from pages.common import LANG_KEY, get_settings, lang, show_error, tr
from routing_core.registry import current_version
from routing_core.train import ensure_model

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="라우팅 예측 대시보드 · Routing ML", page_icon=":material/precision_manufacturing:", layout="wide")

settings = get_settings()
lang()
st.sidebar.selectbox(
    tr("app.language"),
    options=["ko", "en"],
    format_func=lambda code: {"ko": "한국어", "en": "English"}[code],
    key=LANG_KEY,
)


def _bootstrap() -> None:
    """Generate the sample data and train the first model, with visible progress."""
    with st.status(tr("bootstrap.title"), expanded=True) as status:
        bar = st.progress(0.0)

        def progress(stage: str, fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=tr(f"stage.{stage}"))

        try:
            version = ensure_model(settings, progress=progress)
        except Exception as exc:  # shown on the page, the app must not crash
            status.update(label=tr("bootstrap.failed"), state="error")
            show_error(exc)
            st.stop()
        status.update(label=tr("bootstrap.done", version=version), state="complete", expanded=False)


if current_version(settings.model_dir) is None:
    _bootstrap()

pages = [
    st.Page("pages/predict.py", title=tr("nav.predict"), icon=":material/online_prediction:", url_path="predict", default=True),
    st.Page("pages/train.py", title=tr("nav.train"), icon=":material/model_training:", url_path="train"),
    st.Page("pages/batch.py", title=tr("nav.batch"), icon=":material/list_alt:", url_path="batch"),
    st.Page("pages/export.py", title=tr("nav.export"), icon=":material/upload_file:", url_path="export"),
    st.Page("pages/times.py", title=tr("nav.times"), icon=":material/timer:", url_path="times"),
    st.Page("pages/data.py", title=tr("nav.data"), icon=":material/database:", url_path="data"),
]
navigation = st.navigation(pages)
version = current_version(settings.model_dir)
st.sidebar.caption(tr("app.model_version", version=version) if version else tr("app.no_model"))
navigation.run()
