"""Tests of routing_core.sources on real CSV, xlsx and parquet files in a temporary folder."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from routing_core import schema
from routing_core.config import load_settings
from routing_core.errors import DataError
from routing_core.i18n import Note
from routing_core.sources import LoadedData, _read_csv, load_views, read_folder, read_item_list
from routing_core.validation import SOURCE_PROBLEM_COLUMN, validate_views

# One real routing from the ERP's routing detail table, with personal ids replaced.
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "erp_excerpt" / "P_BOP_PROC_DETAIL.csv"

KOREAN_ITEMS = "품목코드,품목명,재질,외경,외경단위\n000123,카본 링,Carbon,2,inch\n000124,실리콘 씰,SiC,50,mm\n"
KOREAN_ROUTINGS = (
    "품목코드,라우팅번호,공정순서,작업코드,작업명,자원코드,사내외구분,시간단위,준비시간,가공시간\n"
    "000123,R1,20,F40-1,연삭,CNC-01,사내,분,5,1.5\n"
    "000123,R1,10,F61-1,선삭,CNC-02,외주,시간,1,0.5\n"
)


def _write_csv(path: Path, text: str, encoding: str) -> None:
    path.write_bytes(text.encode(encoding))


def _write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, header)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if isinstance(value, date):
                sheet.write_datetime(r, c, value, workbook.add_format({"num_format": "yyyy-mm-dd"}))
            elif isinstance(value, str):
                sheet.write_string(r, c, value)
            else:
                sheet.write(r, c, value)
    workbook.close()


# --- CSV encodings -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_csv_encodings_detected(tmp_path: Path, encoding: str) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", KOREAN_ITEMS, encoding)
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", KOREAN_ROUTINGS, encoding)

    raw, encodings = read_folder(tmp_path)

    assert encodings == {"BI_ITEM_INFO_VIEW.csv": encoding, "BI_ROUTING_VIEW.csv": encoding}
    assert raw.items.columns[0] == "품목코드"
    assert raw.items["품목코드"].to_list() == ["000123", "000124"]
    assert set(raw.items.schema.dtypes()) == {pl.String}
    views, _ = validate_views(raw, reference_date=date(2026, 1, 1))
    assert views.items["ITEM_NM"].to_list() == ["카본 링", "실리콘 씰"]
    assert views.items["OUTDIAMETER"].to_list() == pytest.approx([50.8, 50.0])
    active = views.active_routings
    assert active["PROC_SEQ"].to_list() == [10, 20]
    assert active["JOB_NM"].to_list() == ["선삭", "연삭"]
    assert active["INSIDE_FLAG"].to_list() == ["N", "Y"]
    assert active["SETUP_TIME"].to_list() == [60.0, 5.0]
    assert active["RUN_TIME"].to_list() == [30.0, 1.5]


def test_csv_in_unknown_encoding_rejected(tmp_path: Path) -> None:
    (tmp_path / "BI_ITEM_INFO_VIEW.csv").write_bytes(b"ITEM_CD\n\xff\xfe\xff\n")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", KOREAN_ROUTINGS, "utf-8")

    with pytest.raises(DataError, match="neither UTF-8 nor CP949"):
        read_folder(tmp_path)


def test_tab_separated_csv_read(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", KOREAN_ITEMS.replace(",", "\t"), "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", KOREAN_ROUTINGS, "utf-8")

    raw, _ = read_folder(tmp_path)

    assert raw.items.width == 5
    assert raw.items["외경단위"].to_list() == ["inch", "mm"]


# --- xlsx and parquet --------------------------------------------------------------------


def test_xlsx_read_as_text(tmp_path: Path) -> None:
    _write_xlsx(tmp_path / "BI_ITEM_INFO_VIEW.xlsx", ["ITEM_CD", "OUTDIAMETER"], [["000123", 12.5], ["000124", 40]])
    _write_xlsx(
        tmp_path / "BI_ROUTING_VIEW.xlsx",
        ["ITEM_CD", "PROC_SEQ", "JOB_CD", "RUN_TIME", "VALID_FROM_DT", "VALID_TO_DT"],
        [["000123", 20, "F40-1", 1.5, date(2001, 1, 1), "2999-12-31"],
         ["000123", 10, "F61-1", 3, date(2023, 7, 16), "2999-12-31"]],
    )

    raw, encodings = read_folder(tmp_path)

    assert encodings == {}
    assert set(raw.routings.schema.dtypes()) == {pl.String}
    assert raw.items["ITEM_CD"].to_list() == ["000123", "000124"]
    views, _ = validate_views(raw, reference_date=date(2026, 1, 1))
    assert views.items["OUTDIAMETER"].to_list() == [12.5, 40.0]
    active = views.active_routings
    assert active["PROC_SEQ"].to_list() == [10, 20]
    assert active["RUN_TIME"].to_list() == [3.0, 1.5]
    assert active["VALID_FROM_DT"].to_list() == [date(2023, 7, 16), date(2001, 1, 1)]


def test_parquet_read_typed(tmp_path: Path) -> None:
    pl.DataFrame({"ITEM_CD": ["000123"], "OUTDIAMETER": [12.5]}).write_parquet(tmp_path / "BI_ITEM_INFO_VIEW.parquet")
    pl.DataFrame({"ITEM_CD": ["000123"], "PROC_SEQ": [10], "JOB_CD": ["F61-1"], "RUN_TIME": [2.0]}).write_parquet(
        tmp_path / "BI_ROUTING_VIEW.parquet"
    )

    raw, _ = read_folder(tmp_path)
    views, _ = validate_views(raw, reference_date=date(2026, 1, 1))

    assert raw.routings.schema["PROC_SEQ"] == pl.Int64
    assert views.active_routings["RUN_TIME"].to_list() == [2.0]
    assert views.items["ITEM_CD"].to_list() == ["000123"]


def test_two_formats_of_one_view_rejected(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\nA1\n", "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", "ITEM_CD,PROC_SEQ,JOB_CD\nA1,10,NEW\n", "utf-8")
    _write_xlsx(tmp_path / "BI_ROUTING_VIEW.xlsx", ["ITEM_CD", "PROC_SEQ", "JOB_CD"], [["A1", "10", "OLD"]])

    with pytest.raises(DataError) as raised:
        read_folder(tmp_path)

    message = str(raised.value)
    assert "could be the view BI_ROUTING_VIEW: BI_ROUTING_VIEW.csv, BI_ROUTING_VIEW.xlsx" in message
    assert "keep one of them" in message


def test_names_differing_in_case_rejected(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\nA1\n", "utf-8")
    _write_csv(tmp_path / "bi_item_info_view.CSV", "ITEM_CD\nB1\n", "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", "ITEM_CD,PROC_SEQ,JOB_CD\nA1,10,A\n", "utf-8")

    with pytest.raises(DataError, match="2 files in .* could be the view BI_ITEM_INFO_VIEW: BI_ITEM_INFO_VIEW.csv, bi_item_info_view.CSV"):
        read_folder(tmp_path)


def test_file_names_match_any_case(tmp_path: Path) -> None:
    _write_xlsx(tmp_path / "BI_Item_Info_View.xlsx", ["ITEM_CD"], [["FROM_XLSX"]])
    pl.DataFrame({"ITEM_CD": ["FROM_PARQUET"], "PROC_SEQ": ["10"], "JOB_CD": ["A"]}).write_parquet(
        tmp_path / "bi_routing_view.PARQUET"
    )

    raw, _ = read_folder(tmp_path)

    assert raw.items["ITEM_CD"].to_list() == ["FROM_XLSX"]
    assert raw.routings["ITEM_CD"].to_list() == ["FROM_PARQUET"]


def test_notes_name_file_of_each_view(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", KOREAN_ITEMS, "utf-8")
    _write_xlsx(tmp_path / "BI_ROUTING_VIEW.xlsx", ["ITEM_CD", "PROC_SEQ", "JOB_CD"], [["000123", "10", "A"]])

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))

    notes = loaded.report.notes
    assert notes[0] == "BI_ITEM_INFO_VIEW: read from BI_ITEM_INFO_VIEW.csv"
    assert notes[1] == "BI_ROUTING_VIEW: read from BI_ROUTING_VIEW.xlsx"
    assert isinstance(notes[1], Note)
    assert notes[1].text("ko") == "BI_ROUTING_VIEW: BI_ROUTING_VIEW.xlsx에서 읽음"


def test_qualified_view_names(tmp_path: Path) -> None:
    _write_csv(tmp_path / "ITEMS_V2.csv", "ITEM_CD\nA1\n", "utf-8")
    _write_csv(tmp_path / "ROUTES_V2.csv", "ITEM_CD,PROC_SEQ,JOB_CD\nA1,10,A\n", "utf-8")

    raw, _ = read_folder(tmp_path, ("dbo.ITEMS_V2", "erp.dbo.[ROUTES_V2]", "dbo.ORDERS_V2"))

    assert raw.items.height == 1
    assert raw.routings.height == 1
    assert raw.work_orders.height == 0


# --- missing files -----------------------------------------------------------------------


def test_missing_work_orders_empty_with_note(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", KOREAN_ITEMS, "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", KOREAN_ROUTINGS, "utf-8")

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))

    assert loaded.views.work_orders.height == 0
    assert loaded.views.work_orders.schema == schema.clean_schema(schema.WORK_ORDER_VIEW)
    assert any("no work-order file" in note for note in loaded.report.notes)


@pytest.mark.parametrize("missing", ["BI_ITEM_INFO_VIEW", "BI_ROUTING_VIEW"])
def test_missing_view_file_raises(tmp_path: Path, missing: str) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", KOREAN_ITEMS, "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", KOREAN_ROUTINGS, "utf-8")
    (tmp_path / f"{missing}.csv").unlink()

    with pytest.raises(DataError) as caught:
        read_folder(tmp_path)

    message = str(caught.value)
    assert str(tmp_path) in message
    assert f"{missing}.parquet" in message
    assert f"{missing}.csv" in message


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        read_folder(tmp_path / "nowhere")


# --- acceptance: the ERP routing-detail excerpt --------------------------------------------


def test_erp_excerpt_reads_as_one_routing(tmp_path: Path) -> None:
    shutil.copy(FIXTURE, tmp_path / "BI_ROUTING_VIEW.csv")
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD,ITEM_NM,PART_TYPE\nH10001-GS,메카니컬 씰,ASSY\n", "utf-8")

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))

    active = loaded.views.active_routings
    assert active.height == 4
    assert active["ITEM_CD"].unique().to_list() == ["H10001-GS"]
    assert active["ROUT_NO"].unique().to_list() == ["B#1L00C"]
    assert active["PROC_SEQ"].to_list() == [10, 20, 30, 40]
    assert active["JOB_CD"].to_list() == ["F61-1", "F40-1", "Q30-1", "F20-3"]
    inspection = active.row(2, named=True)
    assert inspection["INSP_FLG"] == "Y"
    assert inspection["JOB_CD"] == "Q30-1"
    assert inspection["WC_CD"] is None
    assert inspection["RES_CD"] == "INS-WC2"
    assert active["INSIDE_FLAG"].to_list() == ["Y"] * 4
    assert active["WAIT_TIME"].to_list() == [200.0, 200.0, 300.0, 200.0]
    assert active["VALID_TO_DT"].to_list() == [date(2999, 12, 31)] * 4
    report = loaded.report
    assert report.rule_counts["operations_out_of_order"] == 1
    assert report.encodings == {"BI_ROUTING_VIEW.csv": "utf-8", "BI_ITEM_INFO_VIEW.csv": "utf-8"}
    assert report.rows_left_out == 0


# --- load_views ------------------------------------------------------------------------------


def test_load_views_sample_generates_once(tmp_path: Path) -> None:
    settings = load_settings(data_source="sample", data_dir=tmp_path / "sample", sample_items=300, sample_seed=3)

    first = load_views(settings)
    stamp = (tmp_path / "sample" / "BI_ROUTING_VIEW.parquet").stat().st_mtime_ns
    second = load_views(settings)

    assert isinstance(first, LoadedData)
    assert first.views.items.height > 0
    assert first.views.active_routings.height > 0
    assert first.fingerprint == second.fingerprint
    assert (tmp_path / "sample" / "BI_ROUTING_VIEW.parquet").stat().st_mtime_ns == stamp
    assert "sample data" in first.source_description
    assert first.seconds > 0


def test_load_views_notes_missing_features(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD,PART_TYPE,ITEM_MATERIAL\nA1,RING,\n", "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", "ITEM_CD,PROC_SEQ,JOB_CD\nA1,10,A\n", "utf-8")
    settings = load_settings(
        data_source="files", data_dir=tmp_path, features="PART_TYPE,ITEM_MATERIAL,OUTDIAMETER:number,COATING"
    )

    loaded = load_views(settings)

    assert "feature columns missing from the data: OUTDIAMETER, COATING" in loaded.report.notes
    assert "feature columns without any value in the data: ITEM_MATERIAL" in loaded.report.notes
    assert loaded.source_description == f"files in {tmp_path}"


# --- item lists for prediction ---------------------------------------------------------------


def test_read_item_list_without_codes(tmp_path: Path) -> None:
    path = tmp_path / "new_items.csv"
    _write_csv(path, "재질,외경,외경단위\nSiC,2,inch\nCarbon,30,mm\n", "cp949")

    items, report = read_item_list(path)

    assert items["ITEM_CD"].to_list() == ["NEW-1", "NEW-2"]
    assert items["ITEM_MATERIAL"].to_list() == ["SiC", "Carbon"]
    assert items["OUTDIAMETER"].to_list() == pytest.approx([50.8, 30.0])
    assert report.encodings == {"new_items.csv": "cp949"}


def test_read_item_list_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "new_items.csv"
    _write_csv(path, "ITEM_CD,PART_TYPE\nZ9,RING\nA1,SEAT\n,SEAT\n", "utf-8")

    items, report = read_item_list(path)

    assert items["ITEM_CD"].to_list() == ["Z9", "A1"]
    assert report.rule_counts["missing_item_cd"] == 1
    assert any("1 of 3 rows" in note for note in report.notes)


def test_read_item_list_from_upload_bytes(tmp_path: Path) -> None:
    path = tmp_path / "upload.xlsx"
    _write_xlsx(path, ["품목코드", "외경"], [["000777", 12]])

    items, _ = read_item_list(path.read_bytes())

    assert items["ITEM_CD"].to_list() == ["000777"]
    assert items["OUTDIAMETER"].to_list() == [12.0]


# --- unreadable and broken files -------------------------------------------------------------


@pytest.mark.parametrize("data", [b"ITEM_CD,PART_TYPE\nA1,RING\n", bytes(range(256)) * 8, b"PK\x03\x04" + b"\x07" * 300])
def test_item_list_not_xlsx_rejected(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(DataError, match=r"cannot read items\.xlsx as an Excel workbook: ") as from_bytes:
        read_item_list(data, "items.xlsx")
    path = tmp_path / "items.xlsx"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"cannot read items\.xlsx as an Excel workbook: ") as from_path:
        read_item_list(path)

    for raised in (from_bytes, from_path):
        assert "\n" not in str(raised.value)
        assert len(str(raised.value)) < 300


def test_item_list_binary_csv_rejected() -> None:
    data = b"ITEM_CD,PART_TYPE\n" + bytes(range(256)) * 200

    with pytest.raises(DataError, match=r"cannot read junk\.csv as CSV text: it contains a NUL byte at byte 18 \(line 2\)") as raised:
        read_item_list(data, "junk.csv")

    assert len(str(raised.value)) < 300


def test_unknown_encoding_names_offsets() -> None:
    data = "ITEM_CD\n가나\n".encode("cp949") + b"A1\n\xff\xfe\n"

    with pytest.raises(DataError) as raised:
        read_item_list(data, "items.csv")

    message = str(raised.value)
    assert "items.csv is neither UTF-8 nor CP949 text" in message
    assert "as UTF-8 byte 8 (line 2)" in message
    assert "as CP949 byte 16 (line 4)" in message
    assert "looks like" not in message


def test_ragged_csv_rejects_only_long_lines(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text('ITEM_CD,PART_TYPE\nA1,RING\nA2,SEAT,EXTRA\n"A3",",\nquoted"\nA4,RING,,\nA5,RING,1,2\n', encoding="utf-8")

    items, report = read_item_list(path)

    assert items["ITEM_CD"].to_list() == ["A1", "A3", "A4"]
    assert items["PART_TYPE"].to_list() == ["RING", ",\nquoted", "RING"]
    assert report.rule_counts == {"ragged_line": 2}
    rejected = report.rejected.select("row", "ITEM_CD", "rule", "reason").rows()
    assert rejected == [
        (2, "A2", "ragged_line", "line 3 has 3 fields, header has 2"),
        (5, "A5", "ragged_line", "line 7 has 4 fields, header has 2"),
    ]
    assert "truncate_ragged_lines" not in " ".join(report.notes)


def test_ragged_routing_file_in_folder(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", KOREAN_ITEMS, "utf-8")
    broken = KOREAN_ROUTINGS + "000124,R1,10,F61-1,선삭,CNC-02,사내,분,1,0.5,99\n"
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", broken, "cp949")

    views, report = validate_views(read_folder(tmp_path)[0])

    assert views.routings.height == 2
    assert report.view_rule_counts[schema.ROUTING_VIEW]["ragged_line"] == 1
    assert report.rejected.filter(pl.col("rule") == "ragged_line")["reason"].to_list() == ["line 4 has 11 fields, header has 10"]


def test_missing_column_message_is_capped(tmp_path: Path) -> None:
    header = ",".join(f"junk{i}_" + "x" * 60 for i in range(500))
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", f"{header}\n" + ",".join("1" for _ in range(500)) + "\n", "utf-8")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", KOREAN_ROUTINGS, "utf-8")

    with pytest.raises(DataError) as raised:
        validate_views(read_folder(tmp_path)[0])

    message = str(raised.value)
    assert len(message) < 800
    assert "… and 490 more" in message
    assert "junk0_" + "x" * 34 + "…" in message
    assert "junk0_" + "x" * 35 not in message


def test_long_multiline_record_rejected() -> None:
    # The record is wider than its widest line, because its quoted field spans two lines.
    data = b'ITEM_CD,PART_TYPE\nA1,"x\ny",z,w\nA2,RING\n'

    items, report = read_item_list(data, "items.csv")

    assert items["ITEM_CD"].to_list() == ["A2"]
    assert report.rejected.select("row", "reason").rows() == [(1, "line 2 has 4 fields, header has 2")]


# --- CSV lines with a wrong number of fields, blank lines and broken quotes ------------------------


def test_short_csv_lines_rejected(tmp_path: Path) -> None:
    # An unquoted line break splits the name on line 2, so both halves are short. Line 6 is cut off.
    data = (
        "ITEM_CD,ROUT_NO,PROC_SEQ,JOB_CD,JOB_NM,RES_CD,TIME_UNIT,SETUP_TIME,RUN_TIME\n"
        "A1,01,10,J1,선반\n"
        "가공,R1,M,5,7\n"
        'A1,01,20,J2,"검사\n(외관)",R1,M,1,2\n'
        "A2,01,10,J1,연마,R1,M\n"
        "A2,01,20,J2,검사,R1,M,1,2\n"
    )

    raw, _ = _read_routing_csv(tmp_path, data)
    views, report = validate_views(raw, reference_date=date(2026, 1, 1))

    assert views.routings.select("ITEM_CD", "PROC_SEQ").rows() == [("A1", 20), ("A2", 20)]
    assert views.routings["JOB_NM"].to_list() == ["검사\n(외관)", "검사"]
    rejected = report.rejected.filter(pl.col("rule") == "ragged_line").select("row", "ITEM_CD", "reason").rows()
    assert rejected == [
        (1, "A1", "line 2 has 5 fields, header has 9"),
        (2, "가공", "line 3 has 5 fields, header has 9"),
        (4, "A2", "line 6 has 7 fields, header has 9"),
    ]
    assert report.view_rule_counts[schema.ROUTING_VIEW]["ragged_line"] == 3


def _read_routing_csv(folder: Path, routings: str) -> tuple:
    """Write items A1 and A2 and the routing CSV text ``routings`` to ``folder``, then read it with read_folder."""
    _write_csv(folder / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\nA1\nA2\n", "utf-8")
    _write_csv(folder / "BI_ROUTING_VIEW.csv", routings, "utf-8")
    return read_folder(folder)


def test_trailing_empty_field_ignored(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("ITEM_CD,PART_TYPE,ITEM_MATERIAL\nA1,RING,SiC\nA2,SEAT,Carbon,\nA3,RING,WC,, \n", encoding="utf-8")

    items, report = read_item_list(path)

    assert items["ITEM_CD"].to_list() == ["A1", "A2", "A3"]
    assert items["ITEM_MATERIAL"].to_list() == ["SiC", "Carbon", "WC"]
    assert report.rule_counts == {}


def test_blank_csv_lines_skipped() -> None:
    data = "\nITEM_CD,PART_TYPE,OUTDIAMETER\nA1,RING,10\n\n   \n,,\nA2,SEAT,abc\r\n\r\n"

    items, report = read_item_list(data.encode("utf-8"), "items.csv")

    assert items["ITEM_CD"].to_list() == ["A1", "A2"]
    assert report.rows_left_out == 0
    assert report.rule_counts == {"number_set_null": 1}
    assert report.changed.select("row", "ITEM_CD").rows() == [(2, "A2")]
    assert report.notes[0] == "items.csv: 4 blank lines skipped (lines 4, 5, 6, 8); row numbers in this report do not count them"


def test_blank_lines_before_header_skipped() -> None:
    items, report = read_item_list(b"\r\n,,\nITEM_CD,PART_TYPE\nA1,RING\nA2\n", "items.csv")

    assert items["ITEM_CD"].to_list() == ["A1"]
    assert report.rejected.select("row", "reason").rows() == [(2, "line 5 has 1 fields, header has 2")]
    assert not any("blank" in note for note in report.notes)


def test_unclosed_quote_names_line() -> None:
    data = '품목코드,품목명\nA1,링\nA2,"선반,R1\nA3,씰\n'.encode("cp949")

    with pytest.raises(DataError) as raised:
        read_item_list(data, "items.csv")

    message = str(raised.value)
    assert message.startswith('cannot read items.csv: line 3: a quoted field is not closed ("선반,R1)')
    assert "\n" not in message


def test_text_after_closing_quote_names_line() -> None:
    with pytest.raises(DataError, match=r'cannot read items\.csv: line 3: text follows the closing quote of a quoted field \("2"x\)'):
        read_item_list(b'ITEM_CD,ITEM_SPEC\nA1,x\nA2,"2"x\n', "items.csv")


def test_stray_quote_names_line() -> None:
    with pytest.raises(DataError) as raised:
        read_item_list(b'ITEM_CD,ITEM_SPEC\nA1,x\nA2,2" pipe\nA3,y\n', "items.csv")

    message = str(raised.value)
    assert "a quote is not closed, or appears inside a field without quotes" in message
    assert "line 3 is the first line with an odd number of quotes" in message


# --- xlsx: sheets, title rows, blank rows and number cells ------------------------------------------


def _write_workbook(path: Path, sheets: dict[str, list[list]], number_format: str | None = None) -> None:
    """Write ``sheets`` (name -> rows, a row may be None for a blank row) with xlsxwriter.

    Numbers get ``number_format`` when given, so 123 can show as 000123.
    """
    workbook = xlsxwriter.Workbook(str(path))
    fmt = workbook.add_format({"num_format": number_format}) if number_format else None
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row or []):
                if isinstance(value, str):
                    sheet.write_string(r, c, value)
                elif value is not None:
                    sheet.write_number(r, c, value, fmt)
    workbook.close()


ROUTING_SHEET = [["ITEM_CD", "PROC_SEQ", "JOB_CD", "SETUP_TIME"], ["000123", 10, "F61-1", 5], ["000123", 20, "Q30-1", 2]]


def test_xlsx_cover_sheet_skipped(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n", "utf-8")
    _write_workbook(tmp_path / "BI_ROUTING_VIEW.xlsx", {"표지": [["라우팅 추출"], ["2026-01-01"]], "데이터": ROUTING_SHEET})

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))

    assert loaded.views.active_routings["JOB_CD"].to_list() == ["F61-1", "Q30-1"]
    assert "BI_ROUTING_VIEW.xlsx: read sheet '데이터', whose header is on row 1" in loaded.report.notes


def test_xlsx_title_rows_skipped(tmp_path: Path) -> None:
    title = [["라우팅 추출 (2026-01-01)"], None, ["", "", "", "", "비고", "비고"]]
    header, *rows = ROUTING_SHEET
    path = tmp_path / "BI_ROUTING_VIEW.xlsx"
    _write_workbook(path, {"Sheet1": [*title, [*header, "비고", "비고"], *rows]})
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n", "utf-8")

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))
    raw, _ = read_folder(tmp_path)

    assert raw.routings.columns == ["ITEM_CD", "PROC_SEQ", "JOB_CD", "SETUP_TIME", "비고", "비고_1"]
    assert raw.routings.height == 2
    assert loaded.views.active_routings["SETUP_TIME"].to_list() == [5.0, 2.0]
    assert "BI_ROUTING_VIEW.xlsx: read sheet 'Sheet1', whose header is on row 4" in loaded.report.notes


def test_xlsx_without_header_names_sheets(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n", "utf-8")
    _write_workbook(
        tmp_path / "BI_ROUTING_VIEW.xlsx",
        {"표지": [["라우팅 추출"]], "빈 시트": [], "데이터": [["ITEM_CD", "PROC_SEQ", "JOB_NM"], ["000123", 10, "선반"]]},
    )

    with pytest.raises(DataError) as raised:
        read_folder(tmp_path)

    message = str(raised.value)
    assert "no sheet of BI_ROUTING_VIEW.xlsx has a header row with the required columns ITEM_CD, PROC_SEQ, JOB_CD" in message
    assert "in its first 20 rows" in message
    assert "sheets looked at: 표지 (first row: 라우팅 추출); 빈 시트 (empty); 데이터 (first row: ITEM_CD, PROC_SEQ, JOB_NM)" in message


def test_xlsx_without_cells_is_empty_view(tmp_path: Path) -> None:
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n", "utf-8")
    _write_workbook(tmp_path / "BI_ROUTING_VIEW.xlsx", {"Sheet1": ROUTING_SHEET})
    _write_workbook(tmp_path / "BI_WORK_ORDER_RESULTS.xlsx", {"Sheet1": []})

    raw, _ = read_folder(tmp_path)

    assert raw.work_orders.shape == (0, 0)


def test_xlsx_blank_rows_skipped(tmp_path: Path) -> None:
    header, first, second = ROUTING_SHEET
    bad = ["000124", 10, "F61-1", "abc"]
    _write_workbook(tmp_path / "BI_ROUTING_VIEW.xlsx", {"Sheet1": [header, first, None, ["  ", None], second, None, bad]})
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n000124\n", "utf-8")

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))

    report = loaded.report
    assert report.row_counts[schema.ROUTING_VIEW] == {"input": 3, "output": 2}
    assert report.rejected.select("row", "ITEM_CD", "rule").rows() == [(3, "000124", "not_a_number")]
    assert (
        "BI_ROUTING_VIEW.xlsx: 3 blank rows skipped (sheet rows 3, 4, 6); row numbers in this report do not count them"
        in report.notes
    )


def test_xlsx_number_cell_codes_noted(tmp_path: Path) -> None:
    path = tmp_path / "items.xlsx"
    _write_workbook(path, {"Sheet1": [["품목코드", "외경"], [123, 50], [45, 51], ["000777", 52], ["987", 53]]}, "000000")

    items, report = read_item_list(path)

    assert items["ITEM_CD"].to_list() == ["123", "45", "000777", "987"]
    note = next(n for n in report.notes if isinstance(n, Note) and n.key == "code_number_cells")
    assert note == (
        "items.xlsx: 2 code cells are Excel number cells, which lose the leading zeros that a cell format "
        "such as 000000 shows: 품목코드 (123, 45). Store codes as text cells"
    )
    assert "품목코드 (123, 45)" in note.text("ko")


def test_xlsx_text_codes_not_noted(tmp_path: Path) -> None:
    # Text cells that look like numbers (987) are what Excel users should store, so they get no note.
    _write_workbook(tmp_path / "items.xlsx", {"Sheet1": [["ITEM_CD", "OUTDIAMETER"], ["987", 50], ["000777", 51]]})

    items, report = read_item_list(tmp_path / "items.xlsx")

    assert items["ITEM_CD"].to_list() == ["987", "000777"]
    assert items["OUTDIAMETER"].to_list() == [50.0, 51.0]
    assert not any("number cells" in note for note in report.notes)


def test_xlsx_number_codes_in_view_noted(tmp_path: Path) -> None:
    header, *rows = ROUTING_SHEET
    _write_workbook(tmp_path / "BI_ROUTING_VIEW.xlsx", {"Sheet1": [header, *rows, [124, 10, "F61-1", 1]]}, "000000")
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n000124\n", "utf-8")

    loaded = load_views(load_settings(data_source="files", data_dir=tmp_path, reference_date=date(2026, 1, 1)))

    note = next(n for n in loaded.report.notes if isinstance(n, Note) and n.key == "code_number_cells")
    assert note.startswith("BI_ROUTING_VIEW.xlsx: 1 code cells are Excel number cells")
    assert "ITEM_CD (124)" in note


# --- parquet column types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "type_text"),
    [
        ("JOB_CD", pl.Series("JOB_CD", [["F61-1"], ["Q30-1", "Q30-2"]]), "List(String)"),
        ("RUN_TIME", pl.Series("RUN_TIME", [[1.0, 2.0], [3.0, 4.0]], dtype=pl.Array(pl.Float64, 2)), "Array(Float64"),
        ("RUN_TIME", pl.Series("RUN_TIME", [{"a": 1.0}, {"a": 2.0}]), "Struct("),
        ("SETUP_TIME", pl.Series("SETUP_TIME", [timedelta(minutes=5), timedelta(hours=1)]), "Duration("),
        ("ITEM_CD", pl.Series("ITEM_CD", [b"000123", b"000124"]), "Binary"),
    ],
)
def test_parquet_odd_types_rejected(tmp_path: Path, column: str, values: pl.Series, type_text: str) -> None:
    routings = pl.DataFrame({"ITEM_CD": ["000123", "000124"], "PROC_SEQ": [10, 10], "JOB_CD": ["F61-1", "F61-1"],
                             "SETUP_TIME": [1.0, 2.0], "RUN_TIME": [1.0, 2.0]})
    routings.with_columns(values).write_parquet(tmp_path / "BI_ROUTING_VIEW.parquet")
    _write_csv(tmp_path / "BI_ITEM_INFO_VIEW.csv", "ITEM_CD\n000123\n", "utf-8")

    with pytest.raises(DataError) as raised:
        read_folder(tmp_path)

    message = str(raised.value)
    assert message.startswith(f"column {column} of BI_ROUTING_VIEW.parquet has type {type_text}")
    assert message.endswith("; expected text, numbers or dates")


def test_unused_odd_column_ignored(tmp_path: Path) -> None:
    pl.DataFrame({"ITEM_CD": ["000123"], "TAGS": [["a", "b"]]}).write_parquet(tmp_path / "BI_ITEM_INFO_VIEW.parquet")
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", "ITEM_CD,PROC_SEQ,JOB_CD\n000123,10,A\n", "utf-8")

    views, report = validate_views(read_folder(tmp_path)[0], reference_date=date(2026, 1, 1))

    assert views.items["ITEM_CD"].to_list() == ["000123"]
    assert any("TAGS" in note for note in report.notes)


def test_item_list_parquet_list_column_rejected(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pl.DataFrame({"ITEM_CD": ["N-1"], "외경": [[50.0, 51.0]]}).write_parquet(path)

    with pytest.raises(DataError, match=r"^column 외경 of items\.parquet has type List\(Float64\)"):
        read_item_list(path)


def test_parquet_number_codes_noted(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pl.DataFrame({"ITEM_CD": [123, 45], "OUTDIAMETER": [50.0, 51.0]}).write_parquet(path)

    items, report = read_item_list(path)

    assert items["ITEM_CD"].to_list() == ["123", "45"]
    assert report.notes[0] == (
        "items.parquet: code columns are stored as numbers, so leading zeros (000123) are lost: ITEM_CD (123, 45). "
        "Store codes as text"
    )


# --- item lists without a known column ----------------------------------------------------------------


@pytest.mark.parametrize("data", [b" , \n1,2\n", b"code,name\nA1,x\n"])
def test_item_list_without_known_column_rejected(data: bytes) -> None:
    with pytest.raises(DataError, match=r"^item list items\.csv has no item-master column; columns found: "):
        read_item_list(data, "items.csv")


def test_item_list_without_known_sheet_rejected(tmp_path: Path) -> None:
    _write_workbook(tmp_path / "items.xlsx", {"Sheet1": [["code", "name"], ["A1", "x"]]})

    with pytest.raises(DataError, match=r"^no sheet of items\.xlsx has a header row with any of the columns ITEM_CD, "):
        read_item_list(tmp_path / "items.xlsx")


def test_header_with_other_separator_rejected() -> None:
    with pytest.raises(DataError) as raised:
        read_item_list(b"ITEM_CD;ITEM_NM,ITEM_SPEC\nA1;x,y\n", "items.csv")

    message = str(raised.value)
    assert "the header 'ITEM_CD;ITEM_NM' joins the column names ITEM_CD, ITEM_NM with ';'" in message
    assert "read with ',' as separator, so the separator looks wrong" in message


def test_wide_line_rejected_without_widening_frame(tmp_path: Path) -> None:
    text = "ITEM_CD,PROC_SEQ,JOB_CD\nA1,10,J1\nA1,20,J2" + "," * 5000 + "x\nA1,30,J3,,\n"
    frame = _read_csv(tmp_path / "wide.csv", text.encode()).frame
    assert frame.columns == ["ITEM_CD", "PROC_SEQ", "JOB_CD", SOURCE_PROBLEM_COLUMN]
    assert frame[SOURCE_PROBLEM_COLUMN].to_list() == [None, "line 3 has 5003 fields, header has 3", None]


def test_classic_mac_line_ends(tmp_path: Path) -> None:
    frame = _read_csv(tmp_path / "mac.csv", b"ITEM_CD,PROC_SEQ\rA1,10\rA2,20\r").frame
    assert frame["ITEM_CD"].to_list() == ["A1", "A2"]
