"""Column contract of the three ERP views: names, types and header aliases.

Raw views use the ERP column names. After validation (see ``validation``):
codes are trimmed, NFKC-normalised text; numbers are Float64; PROC_SEQ is Int64;
dates are Date; flags are "Y"/"N"; and the routing time columns SETUP_TIME,
RUN_TIME, QUEUE_TIME, WAIT_TIME and MOVE_TIME are in minutes with TIME_UNIT "M".
"""

from __future__ import annotations

import polars as pl

ITEM_VIEW = "BI_ITEM_INFO_VIEW"
ROUTING_VIEW = "BI_ROUTING_VIEW"
WORK_ORDER_VIEW = "BI_WORK_ORDER_RESULTS"

# --- item master -----------------------------------------------------------------

ITEM_CODE_COLUMNS = ["ITEM_CD"]
ITEM_TEXT_COLUMNS = ["ITEM_NM", "ITEM_SPEC", "DRAW_NO", "DRAW_REV"]
ITEM_CATEGORY_COLUMNS = [
    "ITEM_TYPE", "PART_TYPE", "ITEM_ACCT", "ITEM_UNIT",
    "ITEM_GRP1", "ITEM_GRP1NM", "GROUP1", "GROUP2", "GROUP3",
    "SealTypeGrup", "IN_SEALTYPE_CD", "MID_SEALTYPE_CD", "OUT_SEALTYPE_CD",
    "RAW_MATL_KIND", "ITEM_MATERIAL", "MATERIAL_DESC", "OUTDIAMETER_UNIT",
]
ITEM_NUMBER_COLUMNS = [
    "OUTDIAMETER", "INDIAMETER", "OUTTHICKNESS",
    "IN_SEALSIZE", "MID_SEALSIZE", "OUT_SEALSIZE",
]
ITEM_FLAG_COLUMNS = ["STANDARD_YN", "ROTATE_CLOCKWISE", "ROTATE_CTRCLOCKWISE"]
ITEM_COLUMNS = (
    ITEM_CODE_COLUMNS + ITEM_TEXT_COLUMNS + ITEM_CATEGORY_COLUMNS
    + ITEM_NUMBER_COLUMNS + ITEM_FLAG_COLUMNS
)
ITEM_REQUIRED = ["ITEM_CD"]

# --- routing ---------------------------------------------------------------------

ROUTING_TIME_COLUMNS = ["SETUP_TIME", "RUN_TIME", "QUEUE_TIME", "WAIT_TIME", "MOVE_TIME"]
ROUTING_COLUMNS = [
    "ITEM_CD", "ROUT_NO", "PROC_SEQ", "JOB_CD", "JOB_NM", "RES_CD", "RES_DIS", "WC_CD",
    "INSIDE_FLAG", "TIME_UNIT", *ROUTING_TIME_COLUMNS, "RUN_TIME_QTY", "MFG_LT",
    "INSP_FLG", "MILESTONE_FLG", "ROUT_ORDER", "BP_CD", "MAJOR_FLG",
    "VALID_FROM_DT", "VALID_TO_DT",
]
ROUTING_REQUIRED = ["ITEM_CD", "PROC_SEQ", "JOB_CD"]

# --- work-order results ----------------------------------------------------------

WORK_ORDER_COLUMNS = [
    "ITEM_CD", "ROUT_NO", "PROC_SEQ", "JOB_CD", "RES_CD", "REPORT_DT",
    "SETUP_HOURS", "MACH_WORKED_HOURS", "ORDER_QTY", "BAD_QTY",
]
WORK_ORDER_REQUIRED = ["ITEM_CD", "PROC_SEQ"]

VIEW_COLUMNS = {
    ITEM_VIEW: ITEM_COLUMNS,
    ROUTING_VIEW: ROUTING_COLUMNS,
    WORK_ORDER_VIEW: WORK_ORDER_COLUMNS,
}

# --- types after validation ------------------------------------------------------

_FLOAT_COLUMNS = {
    *ITEM_NUMBER_COLUMNS, *ROUTING_TIME_COLUMNS, "RUN_TIME_QTY", "MFG_LT",
    "SETUP_HOURS", "MACH_WORKED_HOURS", "ORDER_QTY", "BAD_QTY",
}
_INT_COLUMNS = {"PROC_SEQ"}
_DATE_COLUMNS = {"VALID_FROM_DT", "VALID_TO_DT", "REPORT_DT"}


def clean_dtype(column: str) -> pl.DataType:
    """Return the Polars type a validated column has."""
    if column in _FLOAT_COLUMNS:
        return pl.Float64()
    if column in _INT_COLUMNS:
        return pl.Int64()
    if column in _DATE_COLUMNS:
        return pl.Date()
    return pl.String()


def clean_schema(view: str) -> pl.Schema:
    """Return the full typed schema of a validated view (used for empty frames too)."""
    return pl.Schema({c: clean_dtype(c) for c in VIEW_COLUMNS[view]})


# --- header aliases --------------------------------------------------------------

# ERP table spellings and Korean headers seen in exports, mapped to view columns.
_EXPORT_ALIASES: dict[str, str] = {
    "INSIDE_FLG": "INSIDE_FLAG",
    "품목코드": "ITEM_CD",
    "품목": "ITEM_CD",
    "품목명": "ITEM_NM",
    "품목유형": "ITEM_TYPE",
    "부품유형": "PART_TYPE",
    "품목계정": "ITEM_ACCT",
    "단위": "ITEM_UNIT",
    "재고단위": "ITEM_UNIT",
    "품목그룹": "ITEM_GRP1",
    "품목그룹명": "ITEM_GRP1NM",
    "씰타입그룹": "SealTypeGrup",
    "원자재종류": "RAW_MATL_KIND",
    "재질": "ITEM_MATERIAL",
    "재질설명": "MATERIAL_DESC",
    "외경": "OUTDIAMETER",
    "내경": "INDIAMETER",
    "두께": "OUTTHICKNESS",
    "외경단위": "OUTDIAMETER_UNIT",
    "규격": "ITEM_SPEC",
    "도면번호": "DRAW_NO",
    "도면리비전": "DRAW_REV",
    "표준여부": "STANDARD_YN",
    "라우팅번호": "ROUT_NO",
    "공정순서": "PROC_SEQ",
    "작업코드": "JOB_CD",
    "공정코드": "JOB_CD",
    "작업명": "JOB_NM",
    "공정명": "JOB_NM",
    "자원코드": "RES_CD",
    "자원명": "RES_DIS",
    "작업장코드": "WC_CD",
    "작업장": "WC_CD",
    "사내외구분": "INSIDE_FLAG",
    "사내구분": "INSIDE_FLAG",
    "시간단위": "TIME_UNIT",
    "준비시간": "SETUP_TIME",
    "가공시간": "RUN_TIME",
    "작업시간": "RUN_TIME",
    "기준수량": "RUN_TIME_QTY",
    "대기시간": "QUEUE_TIME",
    "후대기시간": "WAIT_TIME",
    "이동시간": "MOVE_TIME",
    "제조리드타임": "MFG_LT",
    "검사여부": "INSP_FLG",
    "실적보고여부": "MILESTONE_FLG",
    "공정구분": "ROUT_ORDER",
    "외주처": "BP_CD",
    "주라우팅": "MAJOR_FLG",
    "유효시작일": "VALID_FROM_DT",
    "유효종료일": "VALID_TO_DT",
    "실적일": "REPORT_DT",
    "준비시간(시)": "SETUP_HOURS",
    "가공시간(시)": "MACH_WORKED_HOURS",
    "지시수량": "ORDER_QTY",
    "불량수량": "BAD_QTY",
}

# The labels of the item attributes on the prediction page's new-item form, in Korean
# and English (locale texts ``feature.<column>``), so that an item list typed with
# the form's labels is read as is. tests/test_schema.py checks that both locales match.
FORM_LABEL_ALIASES: dict[str, str] = {
    "품목코드": "ITEM_CD", "Item code": "ITEM_CD",
    "품목명": "ITEM_NM", "Item name": "ITEM_NM",
    "규격": "ITEM_SPEC", "Specification": "ITEM_SPEC",
    "도면번호": "DRAW_NO", "Drawing no.": "DRAW_NO",
    "도면 리비전": "DRAW_REV", "Drawing rev.": "DRAW_REV",
    "품목유형": "ITEM_TYPE", "Item type": "ITEM_TYPE",
    "부품유형": "PART_TYPE", "Part type": "PART_TYPE",
    "품목계정": "ITEM_ACCT", "Item account": "ITEM_ACCT",
    "단위": "ITEM_UNIT", "Unit": "ITEM_UNIT",
    "품목그룹": "ITEM_GRP1", "Item group": "ITEM_GRP1",
    "품목그룹명": "ITEM_GRP1NM", "Item group name": "ITEM_GRP1NM",
    "그룹1": "GROUP1", "Group 1": "GROUP1",
    "그룹2": "GROUP2", "Group 2": "GROUP2",
    "그룹3": "GROUP3", "Group 3": "GROUP3",
    "씰타입그룹": "SealTypeGrup", "Seal type group": "SealTypeGrup",
    "내측 씰타입": "IN_SEALTYPE_CD", "Inner seal type": "IN_SEALTYPE_CD",
    "중간 씰타입": "MID_SEALTYPE_CD", "Middle seal type": "MID_SEALTYPE_CD",
    "외측 씰타입": "OUT_SEALTYPE_CD", "Outer seal type": "OUT_SEALTYPE_CD",
    "원자재 종류": "RAW_MATL_KIND", "Raw material kind": "RAW_MATL_KIND",
    "재질": "ITEM_MATERIAL", "Material": "ITEM_MATERIAL",
    "재질 설명": "MATERIAL_DESC", "Material description": "MATERIAL_DESC",
    "치수 단위": "OUTDIAMETER_UNIT", "Size unit": "OUTDIAMETER_UNIT",
    "외경(mm)": "OUTDIAMETER", "Outer diameter (mm)": "OUTDIAMETER",
    "내경(mm)": "INDIAMETER", "Inner diameter (mm)": "INDIAMETER",
    "두께(mm)": "OUTTHICKNESS", "Thickness (mm)": "OUTTHICKNESS",
    "내측 씰 크기": "IN_SEALSIZE", "Inner seal size": "IN_SEALSIZE",
    "중간 씰 크기": "MID_SEALSIZE", "Middle seal size": "MID_SEALSIZE",
    "외측 씰 크기": "OUT_SEALSIZE", "Outer seal size": "OUT_SEALSIZE",
    "표준품 여부": "STANDARD_YN", "Standard item": "STANDARD_YN",
    "시계방향 회전": "ROTATE_CLOCKWISE", "Clockwise": "ROTATE_CLOCKWISE",
    "반시계방향 회전": "ROTATE_CTRCLOCKWISE", "Counter-clockwise": "ROTATE_CTRCLOCKWISE",
}

# Columns whose values are millimetres after validation. Their headers may carry the
# unit as "(mm)" or leave it out: 외경, 외경(mm), OUTDIAMETER (mm) and Outer diameter
# all name OUTDIAMETER. Header matching ignores spaces and case, and NFKC turns ㎜ into mm.
# NOTE: only "(mm)" is accepted. A header that names another unit, such as 외경(inch),
# is not read, because its values would be taken as millimetres.
MM_SUFFIX = "(mm)"
_MM_COLUMNS = ("OUTDIAMETER", "INDIAMETER", "OUTTHICKNESS")


def _mm_suffix_variants(aliases: dict[str, str]) -> dict[str, str]:
    """Return every name of a millimetre column, view names included, with and without "(mm)"."""
    names = {**aliases, **{c: c for c in _MM_COLUMNS}}
    variants: dict[str, str] = {}
    for name, target in names.items():
        if target in _MM_COLUMNS:
            base = name.removesuffix(MM_SUFFIX).rstrip()
            variants[base] = target
            variants[base + MM_SUFFIX] = target
    # A view column is no alias of itself.
    return {name: target for name, target in variants.items() if name != target}


COLUMN_ALIASES: dict[str, str] = {
    **_EXPORT_ALIASES,
    **FORM_LABEL_ALIASES,
    **_mm_suffix_variants({**_EXPORT_ALIASES, **FORM_LABEL_ALIASES}),
}

# Markers that real extracts use for an empty cell (compared after trimming).
NULL_MARKERS = frozenset({"", "NULL", "null", "Null", "-", "N/A", "n/a", "NA", "#N/A", "None", "NaN", "nan"})

# TIME_UNIT spellings and their factor to minutes.
# Keys are upper case, so callers look up the upper-cased TIME_UNIT.
TIME_UNIT_TO_MINUTES: dict[str, float] = {
    "S": 1 / 60, "SEC": 1 / 60, "초": 1 / 60,
    "M": 1.0, "MIN": 1.0, "분": 1.0,
    "H": 60.0, "HR": 60.0, "HOUR": 60.0, "시간": 60.0, "시": 60.0,
}

# INSIDE_FLAG spellings: Y means in-house (사내), N means subcontract (외주).
INSIDE_FLAG_VALUES: dict[str, str] = {"Y": "Y", "N": "N", "사내": "Y", "외주": "N", "1": "Y", "0": "N"}

# Generic Y/N flag spellings.
YES_NO_VALUES: dict[str, str] = {"Y": "Y", "N": "N", "1": "Y", "0": "N", "TRUE": "Y", "FALSE": "N", "예": "Y", "아니오": "N"}
