"""Shared Streamlit helpers: language, settings, cached model and data, error display, kept selections."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import streamlit as st
from pydantic import SecretStr

from routing_core.config import Settings, load_settings
from routing_core.errors import (
    ConfigError,
    DataError,
    ExportError,
    ModelCompatibilityError,
    ModelError,
    RoutingError,
    SourceUnavailableError,
    TrainingInProgressError,
)
from routing_core.i18n import t
from routing_core.predict import Predictor
from routing_core.registry import current_version, load_bundle, manifest_hash
from routing_core.sources import LoadedData, load_views

logger = logging.getLogger("routing_ml.pages")



LANG_KEY = "lang"
_KEEP_PREFIX = "_keep."


SOURCE_OVERRIDES_KEY = "settings.source_overrides"


def get_settings() -> Settings:
    """Return the settings with this session's data-source choice from the data page applied.

    A wrong setting stops the page with one readable message.
    """
    try:
        return load_settings(**st.session_state.get(SOURCE_OVERRIDES_KEY, {}))
    except ConfigError as exc:
        st.error(t("error.config", lang()))
        st.code(str(exc), language=None)
        st.stop()
        raise  # unreachable: st.stop() raises


def lang() -> str:
    """Return the session's language code (``ko`` or ``en``)."""
    if LANG_KEY not in st.session_state:
        try:
            st.session_state[LANG_KEY] = load_settings().language
        except ConfigError:
            st.session_state[LANG_KEY] = "ko"
    return st.session_state[LANG_KEY]


def tr(key: str, **values: Any) -> str:
    """Translate ``key`` into the session's language."""
    return t(key, lang(), **values)


def keep(key: str, default: Any = None, *, per_language: bool = False) -> dict[str, Any]:
    """Return widget kwargs that keep the widget's value when the user switches pages.

    Streamlit drops a widget's state when its page is not shown; the value is
    copied to a separate key on change and restored before the widget is drawn.
    ``per_language`` gives the widget a key per language, for widgets whose
    option labels are translated: a language switch then draws a new widget,
    restored from the same stored value, instead of one whose old labels no
    longer match its options.
    """
    store = _KEEP_PREFIX + key
    widget_key = f"{key}@{lang()}" if per_language else key
    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state.get(store, default)

    def _store() -> None:
        st.session_state[store] = st.session_state[widget_key]

    st.session_state.setdefault(store, st.session_state[widget_key])
    return {"key": widget_key, "on_change": _store}


@st.cache_resource(show_spinner=False, max_entries=3)
def _load_predictor(model_dir: str, version: str, manifest_key: str) -> Predictor:
    # manifest_key is part of the cache key only: a promoted or rebuilt version
    # has another manifest hash, so every session loads it at its next rerun.
    return Predictor(load_bundle(Path(model_dir), version))


def current_predictor(settings: Settings) -> Predictor | None:
    """Return the predictor of the current model, or None after showing why there is none.

    A missing model shows a warning; a model that cannot be loaded shows its error.
    """
    version = current_version(settings.model_dir)
    key = manifest_hash(settings.model_dir, version) if version else None
    if version is None or key is None:
        st.warning(tr("app.no_model"))
        return None
    try:
        return _load_predictor(str(settings.model_dir), version, key)
    except RoutingError as exc:
        show_error(exc)
        return None


def source_key(settings: Settings) -> str:
    """Return a cheap fingerprint of the configured source: file names, sizes and modification times."""
    parts: list[Any] = [settings.data_source, str(settings.data_dir), settings.reference_date and settings.reference_date.isoformat()]
    folder = Path(settings.data_dir)
    if settings.data_source in ("sample", "files") and folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file():
                stat = path.stat()
                parts.append((path.name, stat.st_size, stat.st_mtime_ns))
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()


@st.cache_data(show_spinner=False, max_entries=2)
def _load_data(settings_json: str, key: str, connection_string: str | None) -> LoadedData:
    # JSON masks a SecretStr, so the connection string travels as its own argument;
    # Streamlit keeps only a hash of the arguments.
    settings = Settings.model_validate_json(settings_json)
    settings = settings.model_copy(update={"odbc_connection_string": SecretStr(connection_string) if connection_string else None})
    return load_views(settings)


def loaded_data(settings: Settings) -> LoadedData:
    """Return the validated views, cached per source fingerprint."""
    secret = settings.odbc_connection_string.get_secret_value() if settings.odbc_connection_string else None
    return _load_data(settings.model_dump_json(), source_key(settings), secret)


_ERROR_KEYS: list[tuple[type[BaseException], str]] = [
    (ConfigError, "error.config"),
    (ModelCompatibilityError, "error.model_compat"),
    (ModelError, "error.model"),
    (TrainingInProgressError, "error.training_in_progress"),
    (SourceUnavailableError, "error.source_unavailable"),
    (ExportError, "error.export"),
    (DataError, "error.data"),
]


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$])")


def md_escape(text: str) -> str:
    """Escape Markdown so text from data (file names, codes) shows as written."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def show_error(exc: BaseException) -> None:
    """Show an error as a readable message with its details, never a traceback."""
    if isinstance(exc, RoutingError):
        key = next((k for cls, k in _ERROR_KEYS if isinstance(exc, cls)), "error.unexpected")
        values = {"started_at": getattr(exc, "started_at", "?")}
        st.error(tr(key, **values))
        with st.expander(tr("error.details")):
            st.write(str(exc))
            rows = getattr(exc, "rows", None)
            if rows:
                st.dataframe(rows, hide_index=True)
    else:
        logger.exception("unexpected error on a page")
        st.error(tr("error.unexpected"))
        with st.expander(tr("error.details")):
            st.write(f"{type(exc).__name__}: {exc}")
