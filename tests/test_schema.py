"""Header aliases of the schema: ERP spellings, Korean headers and the new-item form's labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing_core import schema
from routing_core.sources import read_item_list
from routing_core.validation import canonical_column

LOCALES = Path(__file__).resolve().parents[1] / "routing_core" / "locales"


def _form_labels(lang: str) -> dict[str, str]:
    catalog = json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
    return {key.removeprefix("feature."): text for key, text in catalog.items() if key.startswith("feature.")}


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_form_labels_name_their_column(lang: str) -> None:
    labels = _form_labels(lang)
    assert labels, "no feature.* labels in the locale"
    for column, label in labels.items():
        assert canonical_column(label) == column, f"{lang} label {label!r} does not name {column}"


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("외경", "OUTDIAMETER"),
        ("외경(mm)", "OUTDIAMETER"),
        ("외경 (mm)", "OUTDIAMETER"),
        ("외경(MM)", "OUTDIAMETER"),
        ("외경(㎜)", "OUTDIAMETER"),  # NFKC turns the one-character unit into "mm"
        ("OUTDIAMETER(mm)", "OUTDIAMETER"),
        ("내경(mm)", "INDIAMETER"),
        ("두께 (mm)", "OUTTHICKNESS"),
        ("Outer diameter", "OUTDIAMETER"),
        ("Thickness(mm)", "OUTTHICKNESS"),
    ],
)
def test_mm_suffix_accepted(header: str, column: str) -> None:
    assert canonical_column(header) == column


@pytest.mark.parametrize("header", ["외경(inch)", "외경(in)", "OUTDIAMETER(cm)"])
def test_other_unit_not_read(header: str) -> None:
    assert canonical_column(header) is None


def test_hour_headers_keep_their_column() -> None:
    # "(시)" marks hours in work-order exports: the unit suffix rule must not fold it into SETUP_TIME.
    assert canonical_column("준비시간(시)") == "SETUP_HOURS"
    assert canonical_column("준비시간") == "SETUP_TIME"


def test_aliases_target_view_columns() -> None:
    columns = {c for view in schema.VIEW_COLUMNS.values() for c in view}
    assert set(schema.COLUMN_ALIASES.values()) <= columns
    assert all(alias != target for alias, target in schema.COLUMN_ALIASES.items())


def test_item_list_with_form_labels_drops_nothing() -> None:
    data = (
        "품목코드,품목명,부품유형,품목유형,재질,외경(mm),내경(mm),두께(mm),표준품 여부,원자재 종류,씰타입그룹,내측 씰타입\n"
        "NB-0001,회전링 SiC Ø60,FACE,반제품,SiC/SiC,60,45,10,N,SiC,SINGLE,CS1\n"
    ).encode("cp949")

    items, report = read_item_list(data, "batch.csv")

    assert not [n for n in report.notes if getattr(n, "key", None) == "columns_dropped"]
    row = items.row(0, named=True)
    assert (row["OUTDIAMETER"], row["INDIAMETER"], row["OUTTHICKNESS"]) == (60.0, 45.0, 10.0)
    assert row["STANDARD_YN"] == "N"
    assert row["IN_SEALTYPE_CD"] == "CS1"
    assert row["RAW_MATL_KIND"] == "SiC"
