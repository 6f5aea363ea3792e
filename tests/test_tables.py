"""Table downloads: CSV formula guard and xlsx text cells."""

import io

import polars as pl

from routing_core.tables import to_csv_bytes, to_xlsx_bytes


def test_csv_guards_formula_text():
    frame = pl.DataFrame({"RES_CD": ["=cmd|' /C calc'!A0", "@SUM(A1)", "+2+3", "-1+1", "CNC-01", "-5", "-"], "n": [1, 2, 3, 4, 5, 6, 7]})
    text = to_csv_bytes(frame).decode("utf-8-sig")
    back = pl.read_csv(io.StringIO(text))
    assert back["RES_CD"].to_list() == ["'=cmd|' /C calc'!A0", "'@SUM(A1)", "'+2+3", "'-1+1", "CNC-01", "-5", "'-"]
    assert back["n"].to_list() == [1, 2, 3, 4, 5, 6, 7]


def test_csv_has_bom():
    assert to_csv_bytes(pl.DataFrame({"자원": ["가"]})).startswith(b"\xef\xbb\xbf")


def test_xlsx_keeps_formula_text_as_text():
    frame = pl.DataFrame({"RES_CD": ["=1+1"]})
    back = pl.read_excel(io.BytesIO(to_xlsx_bytes(frame)))
    assert back["RES_CD"].to_list() == ["=1+1"]
