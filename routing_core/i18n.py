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
