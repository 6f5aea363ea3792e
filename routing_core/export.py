"""Turn proposed routings into ERP routing detail rows: editing checks, the export basket and the files.

A routing moves through three forms:

* the *editor frame*: the operations of one routing with ``EDITOR_COLUMNS``
  (ERP column names, times in the row's TIME_UNIT), as the engineer edits it;
* a ``BasketRouting``: an editor frame with its ITEM_CD and ROUT_NO, kept in a
  ``Basket`` until it is exported;
* the *export rows*: ``odbc.ERP_EXPORT_COLUMNS`` with times in minutes
  (TIME_UNIT ``M``) and the validity window, as they go to Excel, CSV or the
  ERP staging table.

Checks return one row per problem and never change the data. ``build_export``
returns the rows together with their problems. Every writer (``to_xlsx``,
``to_csv``, ``write_to_erp``) rejects a batch with problems or without rows as
a whole, so no export writes part of a batch. The last section turns batch
predictions into basket routings.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from routing_core import schema
from routing_core.config import Settings
from routing_core.errors import DataError, ExportError
from routing_core.odbc import ERP_CODE_COLUMNS, ERP_EXPORT_COLUMNS, write_staging
from routing_core.predict import PredictionOptions, PredictionResult, Predictor
from routing_core.tables import FORMULA_START, PLAIN_NEGATIVE_NUMBER
from routing_core.validation import MAX_RUN_MIN_PER_PIECE, MAX_WAIT_MIN, OPEN_VALID_TO

logger = logging.getLogger(__name__)

DEFAULT_ROUT_NO = "01"
EMPTY_EXPORT_MESSAGE = "There is no routing data to export."

# Columns of one routing in the editor, in display order. INSIDE_FLG is the ERP
# table spelling of the view's INSIDE_FLAG.
EDITOR_COLUMNS = [
    "PROC_SEQ", "JOB_CD", "JOB_NM", "RES_CD", "WC_CD", "INSIDE_FLG", "TIME_UNIT",
    "SETUP_TIME", "RUN_TIME", "RUN_TIME_QTY", "QUEUE_TIME", "WAIT_TIME", "MOVE_TIME",
    "MFG_LT", "INSP_FLG", "MILESTONE_FLG", "BP_CD",
]
TIME_COLUMNS = ["SETUP_TIME", "RUN_TIME", "QUEUE_TIME", "WAIT_TIME", "MOVE_TIME"]
# Times that must be given; QUEUE_TIME, WAIT_TIME and MOVE_TIME default to 0.
REQUIRED_TIME_COLUMNS = ["SETUP_TIME", "RUN_TIME"]
FLAG_COLUMNS = ["INSIDE_FLG", "INSP_FLG", "MILESTONE_FLG"]
_NUMBER_COLUMNS = [*TIME_COLUMNS, "RUN_TIME_QTY", "MFG_LT"]
# Text columns of the editor frame that the engineer types. Codes reach the files
# trimmed and NFKC-normalised; JOB_NM, the only free text, is trimmed and kept as typed.
_EDITOR_TEXT_COLUMNS = ["JOB_CD", "JOB_NM", "RES_CD", "WC_CD", "BP_CD"]
_EDITOR_CODE_COLUMNS = [c for c in _EDITOR_TEXT_COLUMNS if c in ERP_CODE_COLUMNS]
_EDITOR_FREE_TEXT_COLUMNS = [c for c in _EDITOR_TEXT_COLUMNS if c not in ERP_CODE_COLUMNS]

# Maximum length of a code in characters: the width of the widest code column (ITEM_CD)
# of the example staging table in ``odbc.create_staging_table_sql``. The ERP write also
# checks each value against the declared width of its staging column.
# NOTE: the limit applies to the ERP write too, so codes stay at most 50 characters
# even where the ERP's staging columns are wider.
MAX_CODE_LENGTH = 50
# Maximum number of characters in an xlsx cell. ``polars.write_excel`` (polars 2.1.0)
# writes only the first 32,767 characters of longer text, so longer values are rejected.
XLSX_MAX_CELL_CHARACTERS = 32_767


def _export_dtype(column: str) -> pl.DataType:
    """Return the type of an editor or export column."""
    if column == "PROC_SEQ":
        return pl.Int64()
    if column in _NUMBER_COLUMNS:
        return pl.Float64()
    if column in ("VALID_FROM_DT", "VALID_TO_DT"):
        return pl.Date()
    return pl.String()


EDITOR_SCHEMA = pl.Schema({c: _export_dtype(c) for c in EDITOR_COLUMNS})
EXPORT_SCHEMA = pl.Schema({c: _export_dtype(c) for c in ERP_EXPORT_COLUMNS})

# Time units the editor offers; ``schema.TIME_UNIT_TO_MINUTES`` lists every spelling understood.
EDITOR_TIME_UNITS = ["M", "S", "H"]
_INSIDE_VALUES = {k.upper(): v for k, v in schema.INSIDE_FLAG_VALUES.items()}
_YES_NO_VALUES = {k.upper(): v for k, v in schema.YES_NO_VALUES.items()}

# Export times are rounded to this many decimals, the scale of the example staging table.
TIME_DECIMALS = 4

# Predicted times start the editor rounded to this many significant digits (35.118 → 35.1,
# 0.05234 → 0.0523): the estimates are medians of similar items, and more digits
# would claim a precision they do not have.
PROPOSED_SIGNIFICANT_DIGITS = 3

# Characters that XML 1.0, and so an xlsx file, cannot hold (the set openpyxl rejects).
XML_ILLEGAL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"

# Control characters (Unicode category Cc: U+0000 to U+001F and U+007F to U+009F).
# ``to_xlsx`` removes some of them, so a code that contains one would differ between the
# xlsx file, the CSV file and the ERP rows. Such codes are rejected instead.
CONTROL_CHARACTERS = r"\p{Cc}"
_CONTROL_CODE_POINTS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]

# Encodings of the CSV download: UTF-8 with BOM (opens in Korean Excel) or CP949.
EXPORT_CSV_ENCODINGS = ("utf-8-sig", "cp949")

# Rule -> English description; the pages show the translation under ``editor.rule.<rule>``.
RULES: dict[str, str] = {
    "empty_routing": "the routing has no operations",
    "missing_item_cd": "ITEM_CD is empty",
    "missing_rout_no": "ROUT_NO is empty",
    "missing_proc_seq": "PROC_SEQ is empty",
    "invalid_proc_seq": "PROC_SEQ is not a whole number greater than 0",
    "duplicate_proc_seq": "PROC_SEQ appears more than once in the routing",
    "missing_job_cd": "JOB_CD is empty",
    "missing_res_cd": "RES_CD is empty",
    "not_a_number": "the value is not a number",
    "missing_time": "the time is empty",
    "not_finite_time": "the time is not a finite number",
    "negative_time": "the time is negative",
    "absurd_time": "the time is longer than the allowed maximum",
    "unknown_time_unit": "TIME_UNIT is not a known unit",
    "invalid_run_time_qty": "RUN_TIME_QTY is not greater than 0",
    "unknown_flag": "the flag is neither Y nor N",
    "formula_text": "the text starts with =, +, -, @, a tab or a carriage return, so a spreadsheet would run it as a formula",
    "control_character": "the code contains a control character (U+0000 to U+001F or U+007F to U+009F)",
    "code_too_long": f"the code is longer than {MAX_CODE_LENGTH} characters",
    "text_too_long": f"the text is longer than {XLSX_MAX_CELL_CHARACTERS:,} characters, the maximum of an xlsx cell",
}
PROBLEM_SCHEMA = pl.Schema({
    "row": pl.Int64(), "ITEM_CD": pl.String(), "ROUT_NO": pl.String(), "PROC_SEQ": pl.Int64(),
    "column": pl.String(), "rule": pl.String(), "value": pl.String(), "reason": pl.String(),
})


# --- editor frames ------------------------------------------------------------------


def empty_operations() -> pl.DataFrame:
    """Return an editor frame without operations."""
    return pl.DataFrame(schema=EDITOR_SCHEMA)


def operations_from_result(result: PredictionResult, query: int, candidate_id: str) -> pl.DataFrame:
    """Return one candidate of a prediction as an editor frame.

    Times are the candidate's estimates in minutes (TIME_UNIT ``M``), rounded to
    ``PROPOSED_SIGNIFICANT_DIGITS``; RUN_TIME is per piece, so RUN_TIME_QTY is 1. Raises
    DataError when the result has no such candidate.
    """
    operations = result.operations.filter((pl.col("query") == query) & (pl.col("candidate_id") == candidate_id))
    if operations.height == 0:
        raise DataError(f"prediction {query} has no candidate {candidate_id!r}")

    def minutes(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.Float64).round_sig_figs(PROPOSED_SIGNIFICANT_DIGITS)

    return operations.sort("pos").select(
        pl.col("proc_seq").cast(pl.Int64).alias("PROC_SEQ"),
        pl.col("job_cd").alias("JOB_CD"),
        pl.col("job_nm").alias("JOB_NM"),
        pl.col("res_cd").alias("RES_CD"),
        pl.col("wc_cd").alias("WC_CD"),
        pl.col("inside_flag").alias("INSIDE_FLG"),
        pl.lit("M").alias("TIME_UNIT"),
        minutes("setup_min").alias("SETUP_TIME"),
        minutes("run_min").alias("RUN_TIME"),
        pl.lit(1.0).alias("RUN_TIME_QTY"),
        minutes("queue_min").alias("QUEUE_TIME"),
        minutes("wait_min").alias("WAIT_TIME"),
        minutes("move_min").alias("MOVE_TIME"),
        pl.col("mfg_lt").cast(pl.Float64).alias("MFG_LT"),
        pl.col("insp_flg").alias("INSP_FLG"),
        pl.col("milestone_flg").alias("MILESTONE_FLG"),
        pl.col("bp_cd").alias("BP_CD"),
    ).cast(dict(EDITOR_SCHEMA))


def conform_operations(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``frame`` with exactly ``EDITOR_COLUMNS``: missing ones added empty, others dropped.

    Values that do not fit a column's type (text in a number column, a fraction
    in PROC_SEQ) keep their type, so ``check_operations`` can report them.
    """
    columns = []
    for name, dtype in EDITOR_SCHEMA.items():
        if name not in frame.columns:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        source = frame.schema[name]
        fits = (
            source == dtype or source == pl.Null
            or (dtype == pl.Float64 and source.is_numeric())
            or (dtype == pl.Int64 and source.is_integer())
        )
        if fits or dtype == pl.String:
            columns.append(pl.col(name).cast(dtype))
        else:
            columns.append(pl.col(name))
    return frame.select(columns)


def sort_operations(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the operations ordered by numeric PROC_SEQ; rows without PROC_SEQ go last, ties keep their order."""
    frame = conform_operations(frame)
    order = pl.col("PROC_SEQ").cast(pl.Float64, strict=False)
    return frame.with_columns(order.alias("__order")).sort("__order", nulls_last=True, maintain_order=True).drop("__order")


def renumber_operations(frame: pl.DataFrame, step: int = 10) -> pl.DataFrame:
    """Return the operations sorted by PROC_SEQ and renumbered ``step``, 2 × ``step``, … (10, 20, 30 by default)."""
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    ordered = sort_operations(frame)
    return ordered.with_columns((pl.int_range(1, pl.len() + 1, dtype=pl.Int64) * step).alias("PROC_SEQ"))


# --- checks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """One check: the rule name, the column it reports, the failing condition and the value shown."""

    name: str
    column: str
    condition: pl.Expr
    value: pl.Expr


def _clean_text(column: str) -> pl.Expr:
    """Return free text as typed but trimmed, with empty text and null markers as null.

    NFKC would change characters the engineer typed (``½`` becomes ``1⁄2``, which
    CP949 cannot encode), so free text is not normalised.
    NOTE: ``validation`` applies NFKC to every text column it reads, so a JOB_NM
    with such characters reads back from the exported file in its NFKC form.
    """
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(text.is_in(sorted(schema.NULL_MARKERS))).then(None).otherwise(text)


def _clean_code(column: str) -> pl.Expr:
    """Return a code (or a flag or unit) as NFKC-normalised, trimmed text, with empty text and null markers as null.

    This is what ``validation`` does to codes read back from a file, so ``Ａ-001``
    and ``A-001`` are the same code and an exported code reads back unchanged.
    """
    text = pl.col(column).cast(pl.String).str.normalize("NFKC").str.strip_chars()
    return pl.when(text.is_in(sorted(schema.NULL_MARKERS))).then(None).otherwise(text)


def _number(column: str) -> pl.Expr:
    """Return the column as Float64; text that is not a number becomes null."""
    return pl.col(column).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)


def _shown(expr: pl.Expr) -> pl.Expr:
    """Return a value as text for a problem report (at most 60 characters)."""
    return expr.cast(pl.String).str.slice(0, 60)


def _shown_with_escapes(expr: pl.Expr) -> pl.Expr:
    """Return a value for a problem report with each control character written as ``\\xNN`` (at most 60 characters)."""
    escaped = expr.cast(pl.String).str.replace_many(
        [chr(point) for point in _CONTROL_CODE_POINTS], [f"\\x{point:02x}" for point in _CONTROL_CODE_POINTS]
    )
    return escaped.str.slice(0, 60)


def _minutes_factor() -> pl.Expr:
    """Return the factor from the row's TIME_UNIT to minutes: 1 when empty, null when unknown."""
    unit = _clean_code("TIME_UNIT").str.to_uppercase()
    known = unit.replace_strict(schema.TIME_UNIT_TO_MINUTES, default=None, return_dtype=pl.Float64)
    return pl.when(unit.is_null()).then(1.0).otherwise(known)


def _sequence_rules(group: list[pl.Expr]) -> list[_Rule]:
    """Return the PROC_SEQ checks; ``group`` is the expressions that identify a routing (none for one routing)."""
    seq = _number("PROC_SEQ")
    invalid = seq.is_null() | (seq != seq.floor()) | (seq <= 0) | ~seq.is_finite()
    same_seq = pl.len().over([*group, seq]) if group else pl.len().over(seq)
    return [
        _Rule("missing_proc_seq", "PROC_SEQ", pl.col("PROC_SEQ").is_null(), pl.lit(None, pl.String)),
        _Rule("invalid_proc_seq", "PROC_SEQ", pl.col("PROC_SEQ").is_not_null() & invalid, _shown(pl.col("PROC_SEQ"))),
        _Rule("duplicate_proc_seq", "PROC_SEQ", seq.is_not_null() & (same_seq > 1), _shown(pl.col("PROC_SEQ"))),
    ]


def _time_rules() -> list[_Rule]:
    """Return the checks of TIME_UNIT, the times, RUN_TIME_QTY and MFG_LT."""
    factor = _minutes_factor()
    unit = _clean_code("TIME_UNIT")
    rules = [_Rule("unknown_time_unit", "TIME_UNIT", unit.is_not_null() & factor.is_null(), _shown(pl.col("TIME_UNIT")))]

    for column in _NUMBER_COLUMNS:
        value = _number(column)
        shown = _shown(pl.col(column))
        rules.append(_Rule("not_a_number", column, pl.col(column).is_not_null() & value.is_null(), shown))
        if column in REQUIRED_TIME_COLUMNS:
            rules.append(_Rule("missing_time", column, pl.col(column).is_null(), pl.lit(None, pl.String)))
        rules.append(_Rule("not_finite_time", column, value.is_nan() | value.is_infinite(), shown))
        rules.append(_Rule("negative_time", column, value < 0, shown))

    # NaN compares greater than every number in Polars, so only finite times can be absurd.
    qty = _number("RUN_TIME_QTY")
    run_per_piece = _number("RUN_TIME") * factor / pl.when(qty > 0).then(qty).otherwise(1.0)
    too_long = run_per_piece.is_finite() & (run_per_piece > MAX_RUN_MIN_PER_PIECE)
    rules.append(_Rule("absurd_time", "RUN_TIME", too_long, _shown(pl.col("RUN_TIME"))))
    for column in ("SETUP_TIME", "QUEUE_TIME", "WAIT_TIME", "MOVE_TIME"):
        minutes = _number(column) * factor
        rules.append(_Rule("absurd_time", column, minutes.is_finite() & (minutes > MAX_WAIT_MIN), _shown(pl.col(column))))

    rules.append(_Rule("invalid_run_time_qty", "RUN_TIME_QTY", qty.is_not_null() & (qty <= 0), _shown(pl.col("RUN_TIME_QTY"))))
    return rules


def _formula_rules(columns: list[str]) -> list[_Rule]:
    """Return the checks that reject text a spreadsheet would run as a formula.

    The trimmed text is what the files contain, and the untrimmed text catches a
    leading tab or carriage return. Both are NFKC-normalised for the check alone,
    so a full-width ``＝`` counts as ``=`` in free text too.
    """
    rules = []
    for column in columns:
        untrimmed = pl.col(column).cast(pl.String).str.normalize("NFKC")
        text = _clean_code(column)
        dash = text.str.starts_with("-") & (text.str.len_chars() > 1) & ~text.str.contains(PLAIN_NEGATIVE_NUMBER)
        formula = untrimmed.str.contains(FORMULA_START) | text.str.contains(FORMULA_START) | dash
        rules.append(_Rule("formula_text", column, formula, _shown(pl.col(column))))
    return rules


def _flag_rules() -> list[_Rule]:
    """Return the checks of INSIDE_FLG (Y/N or 사내/외주), INSP_FLG and MILESTONE_FLG (Y/N spellings)."""
    rules = []
    for column in FLAG_COLUMNS:
        mapping = _INSIDE_VALUES if column == "INSIDE_FLG" else _YES_NO_VALUES
        text = _clean_code(column).str.to_uppercase()
        unknown = text.is_not_null() & text.replace_strict(mapping, default=None, return_dtype=pl.String).is_null()
        rules.append(_Rule("unknown_flag", column, unknown, _shown(pl.col(column))))
    return rules


def _control_character_rules(code_columns: list[str]) -> list[_Rule]:
    """Return the checks that reject codes with a control character inside.

    Control characters at either end are white space that the export trims, so only
    the trimmed code is checked. Free text such as JOB_NM is not checked here.
    """
    return [
        _Rule("control_character", c, _clean_code(c).str.contains(CONTROL_CHARACTERS), _shown_with_escapes(pl.col(c)))
        for c in code_columns
    ]


def _length_rules(code_columns: list[str], text_columns: list[str]) -> list[_Rule]:
    """Return the checks of code length (``MAX_CODE_LENGTH``) and free-text length (``XLSX_MAX_CELL_CHARACTERS``).

    Lengths are counted in characters of the text as it reaches the files.
    """
    rules = [
        _Rule("code_too_long", c, _clean_code(c).str.len_chars() > MAX_CODE_LENGTH, _shown(pl.col(c)))
        for c in code_columns
    ]
    rules += [
        _Rule("text_too_long", c, _clean_text(c).str.len_chars() > XLSX_MAX_CELL_CHARACTERS, _shown(pl.col(c)))
        for c in text_columns
    ]
    return rules


def _operation_rules(group: list[pl.Expr]) -> list[_Rule]:
    """Return every check of one operation row; ``group`` is the expressions that identify a routing."""
    codes = [
        _Rule("missing_job_cd", "JOB_CD", _clean_code("JOB_CD").is_null(), _shown(pl.col("JOB_CD"))),
        _Rule("missing_res_cd", "RES_CD", _clean_code("RES_CD").is_null(), _shown(pl.col("RES_CD"))),
    ]
    return [
        *_sequence_rules(group), *codes, *_length_rules(_EDITOR_CODE_COLUMNS, _EDITOR_FREE_TEXT_COLUMNS),
        *_control_character_rules(_EDITOR_CODE_COLUMNS), *_time_rules(), *_flag_rules(),
        *_formula_rules(_EDITOR_TEXT_COLUMNS),
    ]


def _problems(frame: pl.DataFrame, rules: list[_Rule]) -> pl.DataFrame:
    """Evaluate ``rules`` on every row; return one row per failed (row, rule, column), in row order."""
    if frame.height == 0:
        return pl.DataFrame(schema=PROBLEM_SCHEMA)
    keys = [pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String) for c in ("ITEM_CD", "ROUT_NO")]
    checks = [
        pl.when(rule.condition.fill_null(False))
        .then(pl.struct(pl.lit(rule.name).alias("rule"), pl.lit(rule.column).alias("column"), rule.value.alias("value")))
        .alias(f"\x00{position}")
        for position, rule in enumerate(rules)
    ]
    found = (
        frame.with_row_index("\x00row")
        .select(
            pl.col("\x00row").cast(pl.Int64).alias("row"),
            keys[0].alias("ITEM_CD"), keys[1].alias("ROUT_NO"),
            pl.col("PROC_SEQ").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
            .cast(pl.Int64, strict=False).alias("PROC_SEQ"),
            *checks,
        )
        .unpivot(index=["row", "ITEM_CD", "ROUT_NO", "PROC_SEQ"], variable_name="\x00check", value_name="problem")
        .filter(pl.col("problem").is_not_null())
        .with_columns(pl.col("\x00check").str.slice(1).cast(pl.Int64))
        .sort("row", "\x00check")
        .unnest("problem")
    )
    descriptions = pl.col("rule").replace_strict(RULES, return_dtype=pl.String)
    reason = pl.format("{}{}: {}", pl.col("column"),
                       pl.when(pl.col("value").is_not_null()).then(pl.format(" ('{}')", pl.col("value"))).otherwise(pl.lit("")),
                       descriptions)
    return found.with_columns(reason.alias("reason")).select(list(PROBLEM_SCHEMA)).cast(dict(PROBLEM_SCHEMA))


def check_operations(frame: pl.DataFrame) -> pl.DataFrame:
    """Check one edited routing; return one row per problem (empty when the routing can be exported).

    Rules (``RULES`` describes them): PROC_SEQ present, a whole number > 0 and
    unique; JOB_CD and RES_CD present; codes (JOB_CD, RES_CD, WC_CD, BP_CD) at
    most ``MAX_CODE_LENGTH`` characters and without a control character inside,
    and JOB_NM at most ``XLSX_MAX_CELL_CHARACTERS``; SETUP_TIME and RUN_TIME present; every
    time, RUN_TIME_QTY and MFG_LT a finite number ≥ 0 and not longer than the
    limits that validation applies when the rows are read back
    (``validation.MAX_RUN_MIN_PER_PIECE``, ``validation.MAX_WAIT_MIN``); RUN_TIME_QTY
    > 0; TIME_UNIT empty (minutes) or a known unit; flags Y/N (INSIDE_FLG also
    사내/외주); no text value that starts with =, +, @, a tab, a carriage return
    or a minus sign before anything but a plain number, because Excel would run
    it as a formula when it opens the CSV file. A routing without operations is one problem with ``row`` null.
    Columns of the result are ``PROBLEM_SCHEMA``; ``row`` is the 0-based position
    in ``frame``.
    """
    frame = conform_operations(frame)
    if frame.height == 0:
        return pl.DataFrame(
            [{"row": None, "ITEM_CD": None, "ROUT_NO": None, "PROC_SEQ": None, "column": None,
              "rule": "empty_routing", "value": None, "reason": RULES["empty_routing"]}],
            schema=PROBLEM_SCHEMA,
        )
    return _problems(frame, _operation_rules([]))


def check_export(rows: pl.DataFrame) -> pl.DataFrame:
    """Check export rows (``ERP_EXPORT_COLUMNS``): ITEM_CD and ROUT_NO present, at most
    ``MAX_CODE_LENGTH`` characters and without a control character inside, then
    ``check_operations`` per routing, with PROC_SEQ unique per (ITEM_CD, ROUT_NO).
    Returns ``PROBLEM_SCHEMA`` rows.
    """
    missing = [c for c in ("ITEM_CD", "ROUT_NO", *EDITOR_COLUMNS) if c not in rows.columns]
    if missing:
        raise ExportError(f"export rows are missing the columns {', '.join(missing)}; build them with build_export")
    rules = [
        _Rule("missing_item_cd", "ITEM_CD", _clean_code("ITEM_CD").is_null(), pl.lit(None, pl.String)),
        _Rule("missing_rout_no", "ROUT_NO", _clean_code("ROUT_NO").is_null(), pl.lit(None, pl.String)),
        *_length_rules(["ITEM_CD", "ROUT_NO"], []),
        *_control_character_rules(["ITEM_CD", "ROUT_NO"]),
        *_formula_rules(["ITEM_CD", "ROUT_NO"]),
        *_operation_rules([_clean_code("ITEM_CD"), _clean_code("ROUT_NO")]),
    ]
    return _problems(rows, rules)


# --- the basket -------------------------------------------------------------------------


@dataclass(frozen=True)
class BasketRouting:
    """One approved routing waiting for export: the item, the routing number and its operations (editor frame)."""

    item_cd: str
    rout_no: str
    operations: pl.DataFrame
    item_nm: str | None = None
    candidate_id: str | None = None
    model_version: str | None = None
    added_at: datetime = field(default_factory=lambda: datetime.now().replace(microsecond=0))


class Basket:
    """Routings chosen for export, one per ITEM_CD in the order they were first added.

    Adding an item that is already in the basket replaces its routing and keeps
    its position.
    """

    def __init__(self) -> None:
        self._routings: dict[str, BasketRouting] = {}

    def add(self, routing: BasketRouting) -> bool:
        """Store ``routing`` (its operations sorted by PROC_SEQ); return True when it replaced one of the same item.

        Raises DataError when ITEM_CD or ROUT_NO is empty.
        """
        item_cd = (routing.item_cd or "").strip()
        rout_no = (routing.rout_no or "").strip()
        if not item_cd or not rout_no:
            raise DataError(f"ITEM_CD and ROUT_NO are required, got {routing.item_cd!r} and {routing.rout_no!r}; enter both")
        replaced = item_cd in self._routings
        stored = BasketRouting(
            item_cd=item_cd, rout_no=rout_no, operations=sort_operations(routing.operations),
            item_nm=routing.item_nm, candidate_id=routing.candidate_id,
            model_version=routing.model_version, added_at=routing.added_at,
        )
        self._routings[item_cd] = stored
        logger.info("basket: %s %s routing %s with %d operations", "replaced" if replaced else "added",
                    item_cd, rout_no, stored.operations.height)
        return replaced

    def remove(self, item_cd: str) -> bool:
        """Remove the routing of ``item_cd``; return whether it was in the basket."""
        return self._routings.pop(item_cd, None) is not None

    def clear(self) -> None:
        """Remove every routing."""
        self._routings.clear()

    def routings(self) -> list[BasketRouting]:
        """Return the routings in basket order."""
        return list(self._routings.values())

    def get(self, item_cd: str) -> BasketRouting | None:
        """Return the routing of ``item_cd`` or None."""
        return self._routings.get(item_cd)

    def __contains__(self, item_cd: object) -> bool:
        return item_cd in self._routings

    def __len__(self) -> int:
        return len(self._routings)

    def summary(self) -> pl.DataFrame:
        """Return one row per routing: ITEM_CD, ITEM_NM, ROUT_NO, operations, candidate_id, model_version, added_at."""
        return pl.DataFrame(
            {
                "ITEM_CD": [r.item_cd for r in self._routings.values()],
                "ITEM_NM": [r.item_nm for r in self._routings.values()],
                "ROUT_NO": [r.rout_no for r in self._routings.values()],
                "operations": [r.operations.height for r in self._routings.values()],
                "candidate_id": [r.candidate_id for r in self._routings.values()],
                "model_version": [r.model_version for r in self._routings.values()],
                "added_at": [r.added_at for r in self._routings.values()],
            },
            schema={"ITEM_CD": pl.String, "ITEM_NM": pl.String, "ROUT_NO": pl.String, "operations": pl.Int64,
                    "candidate_id": pl.String, "model_version": pl.String, "added_at": pl.Datetime("us")},
        )


# --- export rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportBatch:
    """Export rows (``EXPORT_SCHEMA``) and their problems (``PROBLEM_SCHEMA``); exportable when there are none."""

    rows: pl.DataFrame
    problems: pl.DataFrame

    @property
    def n_routings(self) -> int:
        """Return the number of distinct (ITEM_CD, ROUT_NO) routings in the rows."""
        return self.rows.select("ITEM_CD", "ROUT_NO").unique().height if self.rows.height else 0

    @property
    def ok(self) -> bool:
        """Return whether there are rows and no problem."""
        return self.rows.height > 0 and self.problems.height == 0


def _raw_rows(routings: Sequence[BasketRouting]) -> pl.DataFrame:
    """Stack the routings' editor frames with ITEM_CD and ROUT_NO, values as given.

    Rows are in basket order and, within a routing, in PROC_SEQ order (rows
    without a readable PROC_SEQ last), so row numbers match the export rows.
    """
    frames = []
    for position, routing in enumerate(routings):
        operations = conform_operations(routing.operations)
        frames.append(operations.with_columns(
            pl.lit(routing.item_cd, pl.String).alias("ITEM_CD"),
            pl.lit(routing.rout_no, pl.String).alias("ROUT_NO"),
            pl.lit(position, pl.Int64).alias("__routing"),
        ))
    if not frames:
        return pl.DataFrame(schema={**EDITOR_SCHEMA, "ITEM_CD": pl.String(), "ROUT_NO": pl.String(), "__routing": pl.Int64()})
    stacked = pl.concat(frames, how="vertical_relaxed")
    return (
        stacked.with_row_index("__position")
        .with_columns(_number("PROC_SEQ").alias("__seq"))
        .sort("__routing", "__seq", "__position", nulls_last=True)
        .drop("__position", "__seq")
    )


def _empty_routing_problems(routings: Sequence[BasketRouting]) -> pl.DataFrame:
    """Return one ``empty_routing`` problem per routing without operations."""
    empty = [r for r in routings if conform_operations(r.operations).height == 0]
    return pl.DataFrame(
        [{"row": None, "ITEM_CD": r.item_cd, "ROUT_NO": r.rout_no, "PROC_SEQ": None, "column": None,
          "rule": "empty_routing", "value": None, "reason": RULES["empty_routing"]} for r in empty],
        schema=PROBLEM_SCHEMA,
    )


def _flag(column: str, mapping: dict[str, str]) -> pl.Expr:
    """Return a flag column mapped to Y/N; unknown spellings become null."""
    return _clean_code(column).str.to_uppercase().replace_strict(mapping, default=None, return_dtype=pl.String).alias(column)


def _erp_rows(raw: pl.DataFrame, valid_from: date) -> pl.DataFrame:
    """Convert stacked editor rows to ``EXPORT_SCHEMA``: clean codes and text, minutes, Y/N flags, validity window."""
    factor = _minutes_factor()
    qty = _number("RUN_TIME_QTY")
    seq = _number("PROC_SEQ")

    def minutes(column: str, default: float | None) -> pl.Expr:
        value = (_number(column) * factor).round(TIME_DECIMALS)
        return (value.fill_null(default) if default is not None else value).alias(column)

    text_columns = ["ITEM_CD", "ROUT_NO", "JOB_CD", "JOB_NM", "RES_CD", "WC_CD", "BP_CD"]
    return raw.select(
        *[(_clean_code(c) if c in ERP_CODE_COLUMNS else _clean_text(c)).alias(c) for c in text_columns],
        pl.when(seq == seq.floor()).then(seq).cast(pl.Int64, strict=False).alias("PROC_SEQ"),
        _flag("INSIDE_FLG", _INSIDE_VALUES),
        pl.lit("M").alias("TIME_UNIT"),
        minutes("SETUP_TIME", None),
        minutes("RUN_TIME", None),
        pl.when(qty > 0).then(qty).when(qty.is_null()).then(1.0).alias("RUN_TIME_QTY"),
        minutes("QUEUE_TIME", 0.0),
        minutes("WAIT_TIME", 0.0),
        minutes("MOVE_TIME", 0.0),
        _number("MFG_LT").round(TIME_DECIMALS).alias("MFG_LT"),
        _flag("INSP_FLG", _YES_NO_VALUES),
        _flag("MILESTONE_FLG", _YES_NO_VALUES),
        pl.lit(valid_from, pl.Date).alias("VALID_FROM_DT"),
        pl.lit(OPEN_VALID_TO, pl.Date).alias("VALID_TO_DT"),
    ).select(ERP_EXPORT_COLUMNS).cast(dict(EXPORT_SCHEMA))


def registered_routings(routings: Sequence[BasketRouting], active_routings: pl.DataFrame) -> pl.DataFrame:
    """Return the basket items that already have an active routing in the ERP data.

    Columns: ITEM_CD, ROUT_NO of the basket, ERP_ROUT_NO (the routing in use) and
    ERP_OPERATIONS (its number of operations), one row per such item in basket order.
    Writing such an item adds a routing beside the one in use or replaces it, as the
    ERP's staging import decides, so the engineer should look before writing.
    """
    basket = pl.DataFrame(
        {"ITEM_CD": [r.item_cd for r in routings], "ROUT_NO": [r.rout_no for r in routings]},
        schema={"ITEM_CD": pl.String, "ROUT_NO": pl.String},
    )
    in_use = active_routings.group_by("ITEM_CD").agg(
        pl.col("ROUT_NO").first().alias("ERP_ROUT_NO"), pl.len().cast(pl.Int64).alias("ERP_OPERATIONS")
    )
    return basket.join(in_use, on="ITEM_CD", how="inner", maintain_order="left")


def build_export(routings: Sequence[BasketRouting], valid_from: date | None = None) -> ExportBatch:
    """Convert basket routings to ERP routing detail rows and check them.

    Rows keep the basket order, and each routing's operations are sorted by
    PROC_SEQ. Text is trimmed, codes are NFKC-normalised (``Ａ-001`` becomes
    ``A-001``), JOB_NM keeps the characters typed, and null markers such as
    ``NULL`` become empty. Times are converted to minutes (TIME_UNIT ``M``) and
    rounded to ``TIME_DECIMALS``. Empty QUEUE_TIME, WAIT_TIME and MOVE_TIME
    become 0, and an empty RUN_TIME_QTY becomes 1. Flags become Y/N.
    VALID_FROM_DT is ``valid_from`` (default today) and VALID_TO_DT the open end
    2999-12-31. Rows with problems are returned too, with the values that could
    not be converted left empty; a problem's ``row`` is its position in the rows.
    """
    raw = _raw_rows(routings)
    problems = check_export(raw) if raw.height else pl.DataFrame(schema=PROBLEM_SCHEMA)
    problems = pl.concat([problems, _empty_routing_problems(routings)])
    rows = _erp_rows(raw, valid_from or date.today())
    return ExportBatch(rows=rows, problems=problems)


def _require_exportable(batch: ExportBatch) -> None:
    """Raise ExportError when the batch is empty or has problems."""
    if batch.rows.height == 0:
        raise ExportError(EMPTY_EXPORT_MESSAGE)
    if batch.problems.height:
        shown = "; ".join(batch.problems.get_column("reason").head(5).to_list())
        raise ExportError(
            f"{batch.problems.height} problems in the export rows, nothing was exported: {shown}",
            rows=batch.problems.to_dicts(),
        )


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileExport:
    """Bytes of one download, its row count and the control characters removed (xlsx only)."""

    data: bytes
    rows: int
    removed_characters: int = 0


def count_control_characters(rows: pl.DataFrame) -> int:
    """Return how many characters of the text columns an xlsx file cannot hold."""
    text = [c for c, dtype in rows.schema.items() if dtype == pl.String]
    if not text or rows.height == 0:
        return 0
    counts = rows.select([pl.col(c).str.count_matches(XML_ILLEGAL_CHARACTERS).fill_null(0).sum() for c in text])
    return int(sum(counts.row(0)))


def to_xlsx(batch: ExportBatch) -> FileExport:
    """Write the export rows as an xlsx workbook (sheet ``ROUTING``) with ``polars.write_excel``.

    Control characters that XML cannot hold are removed and counted. Codes stay
    text (``000123`` keeps its zeros), dates are date cells. Raises ExportError
    for an empty batch or one with problems.
    """
    _require_exportable(batch)
    removed = count_control_characters(batch.rows)
    text = [c for c, dtype in batch.rows.schema.items() if dtype == pl.String]
    cleaned = batch.rows.with_columns([pl.col(c).str.replace_all(XML_ILLEGAL_CHARACTERS, "") for c in text])
    buffer = io.BytesIO()
    cleaned.write_excel(
        buffer,
        worksheet="ROUTING",
        autofit=True,
        dtype_formats={pl.Date: "yyyy-mm-dd"},
        float_precision=TIME_DECIMALS,
    )
    if removed:
        logger.warning("xlsx export: removed %d control characters", removed)
    logger.info("xlsx export: %d rows, %d routings", cleaned.height, batch.n_routings)
    return FileExport(buffer.getvalue(), cleaned.height, removed)


def unencodable_characters(rows: pl.DataFrame, encoding: str) -> pl.DataFrame:
    """Return the text values ``encoding`` cannot hold: row, ITEM_CD, PROC_SEQ, column, value, characters.

    Each distinct character of the text columns is tried once, so the cost grows
    with the number of distinct characters, not rows.
    """
    result_schema = {"row": pl.Int64, "ITEM_CD": pl.String, "PROC_SEQ": pl.Int64, "column": pl.String,
                     "value": pl.String, "characters": pl.String}
    text = [c for c, dtype in rows.schema.items() if dtype == pl.String]
    if not text or rows.height == 0:
        return pl.DataFrame(schema=result_schema)
    distinct = (
        rows.select(pl.concat_list([pl.col(c).fill_null("") for c in text]).alias("t"))
        .explode("t").select(pl.col("t").str.split("")).explode("t").unique().get_column("t").to_list()
    )
    bad = sorted(ch for ch in distinct if ch and not _encodable(ch, encoding))
    if not bad:
        return pl.DataFrame(schema=result_schema)
    # Regex-escaped character class of the characters that cannot be written.
    pattern = "[" + "".join(f"\\x{{{ord(ch):x}}}" for ch in bad) + "]"
    found = (
        rows.with_row_index("row")
        .select(pl.col("row").cast(pl.Int64), pl.col("ITEM_CD").alias("__item"),
                pl.col("PROC_SEQ").cast(pl.Int64, strict=False), *text)
        .unpivot(index=["row", "__item", "PROC_SEQ"], on=text, variable_name="column", value_name="value")
        .filter(pl.col("value").str.contains(pattern))
        .with_columns(
            pl.col("value").str.extract_all(pattern).list.unique(maintain_order=True).list.join(" ").alias("characters")
        )
        .sort("row")
        .rename({"__item": "ITEM_CD"})
    )
    return found.select(list(result_schema)).cast(result_schema)


def _encodable(character: str, encoding: str) -> bool:
    try:
        character.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def to_csv(batch: ExportBatch, encoding: str = "utf-8-sig") -> FileExport:
    """Write the export rows as CSV text in ``encoding`` (``utf-8-sig``: UTF-8 with BOM, or ``cp949``).

    UTF-8 with BOM opens correctly in Korean Excel. CP949 is the Korean Windows
    code page. A value with a character that CP949 lacks rejects the whole file
    with an ExportError that lists the values, because a replacement character
    would corrupt the data. Fields with commas, quotes or line breaks are quoted,
    lines end in CRLF and dates are YYYY-MM-DD.
    """
    if encoding not in EXPORT_CSV_ENCODINGS:
        raise ExportError(f"unsupported CSV encoding {encoding!r}; use one of {', '.join(EXPORT_CSV_ENCODINGS)}")
    _require_exportable(batch)
    bad = unencodable_characters(batch.rows, encoding)
    if bad.height:
        shown = ", ".join(f"{c}: {v}" for c, v in bad.select("column", "characters").unique(maintain_order=True).head(5).iter_rows())
        raise ExportError(
            f"{bad.height} values cannot be written in {encoding} ({shown}); nothing was exported. "
            "Change those characters or choose UTF-8.",
            rows=[{**row, "reason": f"characters not in {encoding}: {row['characters']}"} for row in bad.to_dicts()],
        )
    text = batch.rows.write_csv(date_format="%Y-%m-%d", line_terminator="\r\n", float_scientific=False)
    logger.info("CSV export (%s): %d rows, %d routings", encoding, batch.rows.height, batch.n_routings)
    return FileExport(text.encode(encoding), batch.rows.height)


# --- ERP staging table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErpExportResult:
    """Outcome of ``write_to_erp``: rows and routings written (0 in a dry run), rows checked and the table columns filled."""

    rows_written: int
    routings_written: int
    rows_checked: int
    table: str
    dry_run: bool
    seconds: float
    columns: tuple[str, ...] = ()


def erp_export_available(settings: Settings) -> bool:
    """Return whether the ERP staging table can be offered: an ODBC source or a connection string is set."""
    secret = settings.odbc_connection_string
    configured = secret is not None and bool(secret.get_secret_value().strip())
    return settings.data_source == "odbc" or configured


def write_to_erp(batch: ExportBatch, settings: Settings, dry_run: bool = False) -> ErpExportResult:
    """Write the batch into ``settings.staging_table`` through ``odbc.write_staging``: all rows or none.

    ``dry_run`` checks every row against the table and writes nothing. Raises
    ExportError for an empty batch, for rows with problems (listed in
    ``ExportError.rows``), for a table without one of ``ERP_EXPORT_COLUMNS`` and
    for anything the table or the database rejects. The table is then unchanged. Raises ConfigError or SourceUnavailableError
    when the connection cannot be made.
    """
    started = time.perf_counter()
    _require_exportable(batch)
    result = write_staging(batch.rows, settings, dry_run=dry_run)
    routings = 0
    if not dry_run and result.rows_written == batch.rows.height:
        routings = batch.n_routings
    elif not dry_run:
        # write_staging commits all rows or none, so a different count means the
        # driver reported something unexpected; the result carries its count.
        logger.error("ERP export to %s: %d rows sent but %d reported written",
                     result.table, batch.rows.height, result.rows_written)
    seconds = round(time.perf_counter() - started, 3)
    logger.info("ERP export to %s: %d rows (%d routings) written, %d checked, dry_run=%s, %.2f s",
                result.table, result.rows_written, routings, result.rows_checked, dry_run, seconds)
    return ErpExportResult(result.rows_written, routings, result.rows_checked, result.table, dry_run, seconds,
                           columns=result.columns)


def export_fingerprint(batch: ExportBatch) -> str:
    """Return a digest of the export rows, so a dry run is only trusted for the same rows."""
    digest = hashlib.sha256(batch.rows.write_csv(date_format="%Y-%m-%d").encode("utf-8"))
    return digest.hexdigest()


# --- batch prediction -----------------------------------------------------------------------------------


def predict_in_chunks(
    predictor: Predictor,
    items: pl.DataFrame,
    options: PredictionOptions,
    chunk_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> PredictionResult:
    """Predict new items (item-master columns) ``chunk_size`` at a time; return one result for all.

    ``progress(done, total)`` is called after each chunk. Query numbers of the
    result are positions in ``items``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if items.height == 0:
        raise DataError("no items to predict")
    started = time.perf_counter()
    parts: list[PredictionResult] = []
    for offset in range(0, items.height, chunk_size):
        part = predictor.predict_attributes(items.slice(offset, chunk_size), options)
        parts.append(_shift_queries(part, offset))
        if progress is not None:
            progress(min(offset + chunk_size, items.height), items.height)
    seconds = time.perf_counter() - started
    logger.info("batch prediction: %d items in %d chunks, %.2f s", items.height, len(parts), seconds)
    return PredictionResult(
        queries=pl.concat([p.queries for p in parts]),
        candidates=pl.concat([p.candidates for p in parts]),
        operations=pl.concat([p.operations for p in parts]),
        support=pl.concat([p.support for p in parts]),
        seconds=seconds,
    )


def _shift_queries(result: PredictionResult, offset: int) -> PredictionResult:
    def shift(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns((pl.col("query") + offset).cast(pl.Int64))

    return PredictionResult(shift(result.queries), shift(result.candidates), shift(result.operations),
                            shift(result.support), seconds=result.seconds)


def top_candidates(result: PredictionResult) -> pl.DataFrame:
    """Return one row per query: query, item_cd, candidate_id, score, n_support, n_operations, lead_time_min,
    subcontract_days, warnings.

    lead_time_min is the candidate's serial lead time; subcontract_days sums MFG_LT,
    the days of its subcontracted operations, which lead_time_min leaves out (0 when
    none is known). A query without candidates has an empty candidate_id.
    """
    operations = result.operations.group_by("query", "candidate_id").agg(
        pl.len().cast(pl.Int64).alias("n_operations"),
        pl.col("mfg_lt").sum().cast(pl.Float64).alias("subcontract_days"),
    )
    best = result.candidates.filter(pl.col("rank") == 1).select("query", "candidate_id", "score", "n_support", "lead_time_min")
    return (
        result.queries.select("query", "item_cd", "warnings")
        .join(best, on="query", how="left")
        .join(operations, on=["query", "candidate_id"], how="left")
        .sort("query")
        .select(
            "query", "item_cd", "candidate_id", "score", "n_support", "n_operations", "lead_time_min",
            "subcontract_days", "warnings",
        )
    )


def basket_routings_from_result(
    result: PredictionResult,
    queries: Sequence[int],
    rout_no: str = DEFAULT_ROUT_NO,
    item_names: dict[str, str | None] | None = None,
    model_version: str | None = None,
) -> tuple[list[BasketRouting], list[str]]:
    """Return the top candidate of each query in ``queries`` as a BasketRouting.

    Returns (routings, item codes skipped because they have no candidate).
    """
    table = top_candidates(result).filter(pl.col("query").is_in(list(queries)))
    routings: list[BasketRouting] = []
    skipped: list[str] = []
    for query, item_cd, candidate_id in table.select("query", "item_cd", "candidate_id").iter_rows():
        if candidate_id is None:
            skipped.append(item_cd)
            continue
        routings.append(BasketRouting(
            item_cd=item_cd, rout_no=rout_no, operations=operations_from_result(result, query, candidate_id),
            item_nm=(item_names or {}).get(item_cd), candidate_id=candidate_id, model_version=model_version,
        ))
    return routings, skipped
