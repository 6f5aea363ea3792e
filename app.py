"""Routing ML Streamlit entry point: language switch, page navigation and the first-start bootstrap."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from pages.common import LANG_KEY, get_settings, lang, show_error, tr
from routing_core.registry import current_version
from routing_core.train import ensure_model

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

# A local icon: a material-symbol page icon is fetched from a font CDN, which a plant network may block.
ICON = Path(__file__).with_name(".streamlit") / "icon.png"
BOOTSTRAP_FAILED_KEY = "bootstrap.failed"

st.set_page_config(page_title="라우팅 예측 대시보드 · Routing ML", page_icon=str(ICON), layout="wide")

lang()
st.sidebar.selectbox(
    tr("app.language"),
    options=["ko", "en"],
    format_func=lambda code: {"ko": "한국어", "en": "English"}[code],
    key=LANG_KEY,
)

# Navigation comes first, so the menu is there during the first start and on error screens.
pages = [
    st.Page("pages/predict.py", title=tr("nav.predict"), icon=":material/online_prediction:", url_path="predict", default=True),
    st.Page("pages/train.py", title=tr("nav.train"), icon=":material/model_training:", url_path="train"),
    st.Page("pages/batch.py", title=tr("nav.batch"), icon=":material/list_alt:", url_path="batch"),
    st.Page("pages/export.py", title=tr("nav.export"), icon=":material/upload_file:", url_path="export"),
    st.Page("pages/times.py", title=tr("nav.times"), icon=":material/timer:", url_path="times"),
    st.Page("pages/data.py", title=tr("nav.data"), icon=":material/database:", url_path="data"),
]
navigation = st.navigation(pages)
settings = get_settings()


def _bootstrap() -> None:
    """Generate the sample data and train the first model, with visible progress.

    A failure is shown once per session and the pages stay usable, so the user
    can fix the source on the data page instead of seeing the same error everywhere.
    """
    with st.status(tr("bootstrap.title"), expanded=True) as status:
        bar = st.progress(0.0)

        def progress(stage: str, fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=tr(f"stage.{stage}"))

        try:
            version = ensure_model(settings, progress=progress)
        except Exception as exc:  # shown on the page, the app must not crash
            st.session_state[BOOTSTRAP_FAILED_KEY] = True
            status.update(label=tr("bootstrap.failed"), state="error", expanded=True)
            show_error(exc)
            st.info(tr("bootstrap.fix_hint"))
            return
        status.update(label=tr("bootstrap.done", version=version), state="complete", expanded=False)


if current_version(settings.model_dir) is None and not st.session_state.get(BOOTSTRAP_FAILED_KEY):
    _bootstrap()

version = current_version(settings.model_dir)
st.sidebar.caption(tr("app.model_version", version=version) if version else tr("app.no_model"))
navigation.run()
