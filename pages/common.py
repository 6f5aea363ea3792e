"""Shared Streamlit helpers: language, settings, cached model and data, error display, kept selections."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
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
from routing_core.i18n import Note, localized, t
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


def _error_cause(exc: BaseException) -> tuple[str, bool]:
    """Return the cause of ``exc`` for the page and whether it is in the session's language.

    An error raised with a ``Note`` as its message is shown in the session's
    language. Any other message is shown as raised, and routing_core raises in English.
    """
    message = exc.args[0] if exc.args else None
    if isinstance(message, Note):
        return message.text(lang()), True
    if isinstance(exc, RoutingError):
        return str(exc), lang() == "en"
    return f"{type(exc).__name__}: {exc}", lang() == "en"


def show_error(exc: BaseException) -> None:
    """Show an error as a lead sentence for its type with the cause below it, never a traceback.

    The lead sentence states what failed and what to do, in the session's language.
    The cause is the error's own message, and an unexpected error's traceback goes
    to the log only. Rows attached to the error (``DataError.rows``,
    ``ExportError.rows``) are shown as a table.
    """
    if isinstance(exc, RoutingError):
        key = next((k for cls, k in _ERROR_KEYS if isinstance(exc, cls)), "error.unexpected")
        logger.warning("error shown on a page: %s: %s", type(exc).__name__, exc)
    else:
        key = "error.unexpected"
        logger.exception("unexpected error on a page")
    lead = tr(key, started_at=getattr(exc, "started_at", None) or "?")
    cause, translated = _error_cause(exc)
    body = f"**{md_escape(lead)}**"
    if cause:
        body += "\n\n" + tr("error.cause" if translated else "error.cause_untranslated", cause=md_escape(cause))
    st.error(body)
    rows = getattr(exc, "rows", None)
    if rows:
        st.dataframe(rows, hide_index=True, placeholder="—")


# --- the active model's training data ---------------------------------------------------

MISSING_TEXT = "—"
# Locale notes that ``sources.load_views`` uses for a source description. A model
# manifest stores the English text, so it is matched against these to show it translated.
_SOURCE_NOTES = ("source_sample", "source_files", "source_odbc")


def _note_pattern(key: str) -> tuple[re.Pattern[str], set[str]]:
    """Return a regular expression for the English text of note ``key`` and its fields that use thousands separators."""
    parts, grouped = [], set()
    for literal, field, spec, _ in string.Formatter().parse(t(f"note.{key}", "en")):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P<{field}>.+?)")
            if spec and "," in spec:
                grouped.add(field)
    return re.compile("^" + "".join(parts) + "$", re.DOTALL), grouped


def source_text(description: str | None) -> str:
    """Return a data-source description from a model manifest in the session's language.

    Text that matches none of the source notes is returned unchanged.
    """
    if not description:
        return tr("model.source_unknown")
    for key in _SOURCE_NOTES:
        pattern, grouped = _note_pattern(key)
        match = pattern.match(description)
        if match is None:
            continue
        values: dict[str, Any] = match.groupdict()
        try:
            values.update({name: int(values[name].replace(",", "")) for name in grouped})
        except ValueError:
            return description
        return t(f"note.{key}", lang(), **values)
    return description


def created_text(manifest: dict[str, Any]) -> str:
    """Return a manifest's creation time as ``YYYY-MM-DD HH:MM UTC``, or "—" when it has none."""
    created = str(manifest.get("created_at") or "")
    return f"{created.replace('T', ' ')[:16]} UTC" if created else MISSING_TEXT


def model_data_notice(manifest: dict[str, Any], settings: Settings, hint: str) -> None:
    """Show which data the active model was trained on, and a notice when this session's data differs.

    A session can read another source than the model's (the data page changes the
    source for one session), and the data of one source changes over time. Both
    show as different data fingerprints. ``hint`` is the locale key of what the
    page's user can do about other data. This loads the session's data, which
    ``loaded_data`` caches for every session.
    """
    fingerprint = str(manifest.get("data_fingerprint") or "")
    model_source = manifest.get("source")
    st.caption(tr(
        "model.trained_on", version=manifest.get("version", MISSING_TEXT), created=created_text(manifest),
        source=md_escape(source_text(model_source)), fingerprint=fingerprint[:12] or MISSING_TEXT,
    ))
    try:
        with st.spinner(tr("stage.load")):
            loaded = loaded_data(settings)
    except Exception as exc:  # the comparison is extra: the page stays usable without it
        logger.warning("could not read this session's data to compare it with model %s: %s", manifest.get("version"), exc)
        st.caption(tr("model.data_unreadable"))
        return
    if loaded.fingerprint == fingerprint:
        return
    session_source = md_escape(localized(loaded.source_description, lang()))
    if model_source is not None and str(loaded.source_description) == str(model_source):
        st.info(tr("model.data_changed", source=session_source))
    else:
        st.warning(
            tr("model.other_data", model_source=md_escape(source_text(model_source)), session_source=session_source)
            + "\n\n" + tr(hint)
        )

