"""Locale files: the same keys in Korean and English, and every key used in code present."""

import re
from pathlib import Path

from routing_core.i18n import keys, t

ROOT = Path(__file__).resolve().parents[1]


def test_same_keys_in_both_languages():
    assert keys("ko") == keys("en")


def test_keys_used_in_pages_exist():
    pattern = re.compile(r"""\btr\(\s*["']([a-z0-9_.]+)["']""")
    used = set()
    for path in [*ROOT.glob("pages/*.py"), ROOT / "app.py"]:
        used.update(pattern.findall(path.read_text(encoding="utf-8")))
    missing = sorted(k for k in used if k not in keys("ko"))
    assert missing == []


def test_missing_key_falls_back_to_key():
    assert t("no.such.key", "en") == "no.such.key"


def test_format_fields_filled():
    assert t("predict.lead_time_value", "ko", minutes=1234.0) == "1,234분"
    assert t("predict.lead_time_value", "en", minutes=1234.0) == "1,234 min"
