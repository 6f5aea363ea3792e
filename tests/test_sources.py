"""Tests of routing_core.sources on real CSV, xlsx and parquet files in a temporary folder."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from routing_core import schema
from routing_core.config import load_settings
from routing_core.errors import DataError
from routing_core.sources import LoadedData, load_views, read_folder, read_item_list
from routing_core.validation import validate_views

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


def test_format_preference_and_case(tmp_path: Path) -> None:
    _write_csv(tmp_path / "bi_item_info_view.CSV", "ITEM_CD\nFROM_CSV\n", "utf-8")
    _write_xlsx(tmp_path / "BI_Item_Info_View.xlsx", ["ITEM_CD"], [["FROM_XLSX"]])
    _write_csv(tmp_path / "BI_ROUTING_VIEW.csv", "ITEM_CD,PROC_SEQ,JOB_CD\nFROM_CSV,10,A\n", "utf-8")
    _write_xlsx(tmp_path / "BI_ROUTING_VIEW.xlsx", ["ITEM_CD", "PROC_SEQ", "JOB_CD"], [["FROM_XLSX", "10", "A"]])
    pl.DataFrame({"ITEM_CD": ["FROM_PARQUET"], "PROC_SEQ": ["10"], "JOB_CD": ["A"]}).write_parquet(
        tmp_path / "BI_ROUTING_VIEW.parquet"
    )

    raw, _ = read_folder(tmp_path)

    assert raw.items["ITEM_CD"].to_list() == ["FROM_XLSX"]
    assert raw.routings["ITEM_CD"].to_list() == ["FROM_PARQUET"]


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


def test_unreadable_csv_one_line_error() -> None:
    # A long record whose quoted field spans lines is beyond what the ragged-line reader handles.
    data = b'ITEM_CD,PART_TYPE\nA1,"x\ny",z,w\n'

    with pytest.raises(DataError, match=r"cannot read items\.csv as CSV: ") as raised:
        read_item_list(data, "items.csv")

    assert "\n" not in str(raised.value)
    assert "truncate_ragged_lines" not in str(raised.value)
