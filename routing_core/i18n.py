"""User-facing text in Korean (default) and English, read from ``locales/<lang>.json``."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "ko"
_LOCALE_DIR = Path(__file__).with_name("locales")


@lru_cache(maxsize=None)
def _catalog(lang: str) -> dict[str, str]:
    path = _LOCALE_DIR / f"{lang}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def t(key: str, lang: str = DEFAULT_LANGUAGE, **values: Any) -> str:
    """Return the text for ``key`` in ``lang`` with ``{name}`` fields filled from ``values``.

    Falls back to Korean, then to the key itself, so a missing text shows up
    visibly instead of failing the page.
    """
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    text = _catalog(lang).get(key)
    if text is None:
        text = _catalog(DEFAULT_LANGUAGE).get(key)
        if text is None:
            logger.warning("missing locale text %r", key)
            return key
    try:
        return text.format(**values) if values else text
    except (KeyError, IndexError, ValueError):
        logger.warning("locale text %r does not accept fields %s", key, sorted(values))
        return text


def has_key(key: str, lang: str = DEFAULT_LANGUAGE) -> bool:
    """Return whether ``lang`` has its own text for ``key``."""
    return key in _catalog(lang)


def keys(lang: str) -> set[str]:
    """Return every key of a locale (the tests compare the two languages)."""
    return set(_catalog(lang))


class Note(str):
    """A message for the user that reads as English text and can be shown in any language.

    The string value is the English text, so logs, the CLI and JSON reports keep
    working with plain strings. ``key`` names the locale text ``note.<key>`` and
    ``params`` fills its fields; ``text(lang)`` renders it for the page.
    """

    key: str
    params: dict[str, Any]

    def __new__(cls, key: str, **params: Any) -> Note:
        note = super().__new__(cls, t(f"note.{key}", "en", **params))
        note.key = key
        note.params = params
        return note

    def text(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """Return the note in ``lang``."""
        return t(f"note.{self.key}", lang, **self.params)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from key and params, so a pickled copy (st.cache_data) stays a Note.
        return (_note, (self.key, self.params))


def _note(key: str, params: dict[str, Any]) -> Note:
    return Note(key, **params)


def localized(message: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """Return ``message`` in ``lang`` when it is a ``Note``, else unchanged."""
    return message.text(lang) if isinstance(message, Note) else message
