"""Table downloads: CSV formula guard and xlsx text cells."""

import io

import polars as pl

from routing_core.tables import escape_formula_text, to_csv_bytes, to_xlsx_bytes


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


def test_escape_formula_text_only_touches_formula_text():
    frame = pl.DataFrame({
        "JOB_NM": ["=1+1", "\t=1", "\rX", "-١", "연삭 = 2차", None],
        "RUN_TIME": [-1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })

    escaped = escape_formula_text(frame)

    assert escaped["JOB_NM"].to_list() == ["'=1+1", "'\t=1", "'\rX", "'-١", "연삭 = 2차", None]
    assert escaped["RUN_TIME"].to_list() == frame["RUN_TIME"].to_list()


def test_csv_bytes_equal_escaped_frame():
    frame = pl.DataFrame({"RES_CD": ["@SUM(A1)", "CNC-01"]})
    assert to_csv_bytes(frame) == escape_formula_text(frame).write_csv().encode("utf-8-sig")
