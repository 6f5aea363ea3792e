"""Validation of raw ERP views into the typed contract of ``schema``.

``validate_views`` takes the three views as any source delivers them (files,
ODBC, the sample generator). It returns them cleaned and typed, with the active
routing version chosen per item, and a ``ValidationReport`` that counts every
rule that rejected a row or changed a value.

Decisions that a caller should know:

* Rows are rejected (left out of the result and listed in the report) when a key
  is missing (ITEM_CD, and PROC_SEQ and JOB_CD on routings), when a required
  number contains text that is not a number, when TIME_UNIT is not a known unit,
  and when a time is negative or absurd: a run time over ``MAX_RUN_MIN_PER_PIECE``
  minutes per piece, or a set-up, queue, wait or move time over ``MAX_WAIT_MIN``.
* Routing rows of items missing from the item master stay in ``routings`` but not
  in ``active_routings``, because they cannot be encoded without attributes.
* Required numbers are PROC_SEQ, SETUP_TIME, RUN_TIME and RUN_TIME_QTY on
  routings and PROC_SEQ, SETUP_HOURS, MACH_WORKED_HOURS, ORDER_QTY and BAD_QTY on
  work orders: unreadable text there rejects the row. Unreadable text in any other
  number column becomes null and is counted (``number_set_null``). An empty cell
  is null in every number column except PROC_SEQ, where it rejects the row.
* An unreadable VALID_FROM_DT or VALID_TO_DT rejects the routing row, because an
  empty one means "always valid" and would make an expired version active.
* Work-order hours over ``MAX_ORDER_HOURS`` or quantities over ``MAX_ORDER_QTY``
  reject the row; item sizes over ``MAX_SIZE_MM`` are set empty and counted.
* Numbers accept ``1,234.5`` only when the commas group thousands; ``1,5`` is
  not a number, because the decimal separator of these extracts is the point.
* Unknown flag values and other unreadable dates become null and are counted.
* Rule counts count rows, except ``item_without_routing`` (items) and
  ``operations_out_of_order``, ``routing_with_rejected_operations``,
  ``routing_fallback_not_major`` and ``routing_fallback_expired`` (routings).
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from collections.abc import Sequence
from time import perf_counter
from typing import Any

import polars as pl

from routing_core import schema
from routing_core.errors import DataError
from routing_core.i18n import Note

logger = logging.getLogger(__name__)

# Maximum run time per piece (minutes) and maximum set-up, queue, wait or move time
# (minutes, 7 days) of a routing row. Longer times reject the row.
MAX_RUN_MIN_PER_PIECE = 10_000.0
MAX_WAIT_MIN = 7 * 24 * 60.0

# Largest item size (mm) taken as real: OUTDIAMETER, INDIAMETER, OUTTHICKNESS and
# the seal sizes. A larger value is set empty and counted, because one absurd value
# such as 1e300 would break the scaling of every item in the encoder.
MAX_SIZE_MM = 10_000.0

# Largest work-order hours (set-up or machine, per order) and quantity taken as
# real. Larger values reject the row.
MAX_ORDER_HOURS = 10_000.0
MAX_ORDER_QTY = 100_000_000.0

# Rejected rows stored in the report: at most this many per (view, rule), and at
# most MAX_STORED_REJECTED in all. Rule counts always count every row.
MAX_STORED_PER_RULE = 2_000
MAX_STORED_REJECTED = 10_000

# Validity defaults: an empty VALID_FROM_DT means "always valid since", an empty
# VALID_TO_DT means "open", which the ERP writes as 2999-12-31.
OLDEST_VALID_FROM = date(1900, 1, 1)
OPEN_VALID_TO = date(2999, 12, 31)

# Excel stores dates as days since 1899-12-30; serial 25569 is 1970-01-01.
_EXCEL_EPOCH_SERIAL = 25_569
_EXCEL_MAX_SERIAL = 2_958_465  # 9999-12-31

INCH_TO_MM = 25.4

# Optional column a reader adds to a raw view: a reason for rows that the file
# itself broke (such as a CSV line with more fields than the header), else null.
# Validation rejects those rows under the rule ``ragged_line``.
SOURCE_PROBLEM_COLUMN = "__source_problem"

# Rule name -> (action, English description). Actions: "rejected" (the row is left
# out), "removed" (a duplicate row is left out), "changed" (a value was set or
# converted and the row kept), "reported" (nothing changed in the row).
RULES: dict[str, tuple[str, str]] = {
    "ragged_line": ("rejected", "the CSV line has more fields than the header"),
    "missing_item_cd": ("rejected", "ITEM_CD is empty"),
    "missing_proc_seq": ("rejected", "PROC_SEQ is empty"),
    "missing_job_cd": ("rejected", "JOB_CD is empty"),
    "not_a_number": ("rejected", "a required number column holds text that is not a number"),
    "unknown_time_unit": ("rejected", "TIME_UNIT is not a known unit"),
    "negative_time": ("rejected", "a time is negative"),
    "absurd_time": ("rejected", "a time is longer than the allowed maximum"),
    "negative_run_time_qty": ("rejected", "RUN_TIME_QTY is negative"),
    "invalid_validity_date": ("rejected", "VALID_FROM_DT or VALID_TO_DT could not be read, or the window ends before it starts"),
    "absurd_hours": ("rejected", "work-order hours, quantity or run time per piece are larger than the allowed maximum"),
    "negative_hours": ("rejected", "work-order hours are negative"),
    "negative_quantity": ("rejected", "work-order quantity is negative"),
    "exact_duplicate": ("removed", "the row repeats an earlier row exactly"),
    "duplicate_item_cd": ("removed", "ITEM_CD already appeared in the item master"),
    "duplicate_operation": ("removed", "(ITEM_CD, ROUT_NO, PROC_SEQ) already appeared"),
    "number_set_null": ("changed", "an optional number column held text that is not a number; set to empty"),
    "invalid_date_set_null": ("changed", "a date could not be read; set to empty"),
    "time_unit_missing_assumed_minutes": ("changed", "TIME_UNIT was empty; minutes assumed"),
    "time_unit_converted": ("changed", "times converted to minutes"),
    "run_time_qty_defaulted": ("changed", "RUN_TIME_QTY was empty or not positive; set to 1"),
    "unknown_inside_flag": ("changed", "INSIDE_FLAG value not understood; set to empty"),
    "unknown_flag_value": ("changed", "a Y/N flag value not understood; set to empty"),
    "inch_converted_to_mm": ("changed", "geometry converted from inch to mm"),
    "non_positive_geometry_set_null": ("changed", "a diameter or thickness of 0 or less was set empty"),
    "absurd_size_set_null": ("changed", "a size larger than the allowed maximum was set empty"),
    "inner_diameter_not_below_outer": ("reported", "INDIAMETER is not smaller than OUTDIAMETER"),
    "unknown_length_unit": ("reported", "OUTDIAMETER_UNIT is neither mm nor inch; values kept as given"),
    "validity_date_defaulted": ("changed", "an empty validity date was set to the default"),
    "time_missing": ("reported", "SETUP_TIME or RUN_TIME is empty; the row is kept without that time"),
    "routing_item_not_in_master": ("reported", "routing row of an item missing from the item master; left out of active routings"),
    "item_without_routing": ("reported", "item has no routing"),
    "routing_fallback_not_major": ("reported", "no main routing (MAJOR_FLG = Y) valid on the reference date; latest valid routing chosen"),
    "routing_fallback_expired": ("reported", "no routing valid on the reference date; latest routing chosen"),
    "operations_out_of_order": ("reported", "routing operations arrived out of PROC_SEQ order"),
    "routing_with_rejected_operations": ("reported", "routing lost operations to rejected rows"),
    "zero_good_quantity": ("reported", "work order has no good quantity (ORDER_QTY - BAD_QTY <= 0 or empty)"),
}

# Column kinds beyond schema.clean_dtype: flags normalised to Y/N, and the
# number columns whose unreadable text rejects the row.
_FLAG_COLUMNS = frozenset({
    *schema.ITEM_FLAG_COLUMNS, "INSP_FLG", "MILESTONE_FLG", "MAJOR_FLG",
})
_REQUIRED_NUMBERS: dict[str, tuple[str, ...]] = {
    schema.ITEM_VIEW: (),
    # RUN_TIME_QTY is required when given: unreadable text there would turn RUN_TIME
    # for N pieces into a time per piece.
    schema.ROUTING_VIEW: ("PROC_SEQ", "SETUP_TIME", "RUN_TIME", "RUN_TIME_QTY"),
    schema.WORK_ORDER_VIEW: ("PROC_SEQ", "SETUP_HOURS", "MACH_WORKED_HOURS", "ORDER_QTY", "BAD_QTY"),
}
_REQUIRED_COLUMNS: dict[str, list[str]] = {
    schema.ITEM_VIEW: schema.ITEM_REQUIRED,
    schema.ROUTING_VIEW: schema.ROUTING_REQUIRED,
    schema.WORK_ORDER_VIEW: schema.WORK_ORDER_REQUIRED,
}

_YES_NO = {k.upper(): v for k, v in schema.YES_NO_VALUES.items()}
_INSIDE = {k.upper(): v for k, v in schema.INSIDE_FLAG_VALUES.items()}
_MM_SPELLINGS = ["MM", "MILLIMETER", "MILLIMETRE", "밀리미터"]
_INCH_SPELLINGS = ["INCH", "INCHES", "IN", '"', "인치"]
_NULL_MARKERS = sorted(schema.NULL_MARKERS)

_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"
# Year, month, day as 2026-12-04, 2026/12/04, 2026.12.04, Korean Excel's 2026. 12. 4.
# and 2026년 12월 4일.
_ISO_DATE = r"^(\d{4})\s*[-/.년]\s*(\d{1,2})\s*[-/.월]\s*(\d{1,2})"
_REJECTED_SCHEMA = pl.Schema({
    "view": pl.String(), "row": pl.Int64(), "ITEM_CD": pl.String(),
    "rule": pl.String(), "reason": pl.String(),
})
_ROW = "__row"
MAX_CHANGED_EXAMPLES = 100  # example rows kept per view and rule of values set or converted


@dataclass(frozen=True)
class RawViews:
    """The three views as read from a source, before validation (any dtypes, ERP or alias headers)."""

    items: pl.DataFrame
    routings: pl.DataFrame
    work_orders: pl.DataFrame


@dataclass(frozen=True)
class Views:
    """Validated views. See ``schema`` for the types; routing times are in minutes.

    ``routings`` contains every valid routing row of every version, sorted by ITEM_CD,
    ROUT_NO and numeric PROC_SEQ. ``active_routings`` contains the chosen version per
    item of the item master (MAJOR_FLG = Y and valid on the reference date, then the
    latest), sorted by ITEM_CD and PROC_SEQ. ``items`` is sorted by ITEM_CD and
    ``work_orders`` by all its columns, so equal content gives equal frames.
    """

    items: pl.DataFrame
    routings: pl.DataFrame
    active_routings: pl.DataFrame
    work_orders: pl.DataFrame


@dataclass
class ValidationReport:
    """Everything validation rejected or changed.

    ``rule_counts`` sums each rule over the views and ``view_rule_counts`` splits
    it per view. ``rejected`` lists the rows left out or reported, with the columns
    view, row, ITEM_CD, rule and reason. Its ``row`` is the 1-based data row in the
    source, and at most ``MAX_STORED_REJECTED`` rows are stored. ``row_counts`` contains the input and output
    rows per view, ``missing_columns`` the optional columns each source lacked,
    ``encodings`` the text encoding used per file read.
    """

    rule_counts: dict[str, int] = field(default_factory=dict)
    rejected: pl.DataFrame | None = None  # columns: view, row, ITEM_CD, rule, reason
    notes: list[str] = field(default_factory=list)
    encodings: dict[str, str] = field(default_factory=dict)
    view_rule_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    row_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    # Up to MAX_CHANGED_EXAMPLES kept rows per view and rule in which a value was set
    # or converted: view, row, ITEM_CD, rule, detail (the input text, where unreadable).
    changed: pl.DataFrame | None = None

    def count(self, view: str, rule: str, n: int) -> None:
        """Add ``n`` to the count of ``rule`` in ``view``; zero counts are not stored."""
        if rule not in RULES:
            raise ValueError(f"unknown validation rule: {rule!r}")
        if n <= 0:
            return
        self.rule_counts[rule] = self.rule_counts.get(rule, 0) + int(n)
        per_view = self.view_rule_counts.setdefault(view, {})
        per_view[rule] = per_view.get(rule, 0) + int(n)

    @property
    def rows_left_out(self) -> int:
        """Return the number of input rows left out of the views (rejected or duplicate)."""
        return sum(n for rule, n in self.rule_counts.items() if RULES[rule][0] in ("rejected", "removed"))

    def to_frame(self) -> pl.DataFrame:
        """Return one row per rule that fired: rule, count, action, description."""
        rules = sorted(self.rule_counts, key=list(RULES).index)
        return pl.DataFrame(
            {
                "rule": rules,
                "count": [self.rule_counts[r] for r in rules],
                "action": [RULES[r][0] for r in rules],
                "description": [RULES[r][1] for r in rules],
            },
            schema={"rule": pl.String, "count": pl.Int64, "action": pl.String, "description": pl.String},
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the report, including the stored rejected rows, as JSON-safe data."""
        rejected = self.rejected if self.rejected is not None else pl.DataFrame(schema=_REJECTED_SCHEMA)
        return {
            "rule_counts": dict(self.rule_counts),
            "view_rule_counts": {v: dict(c) for v, c in self.view_rule_counts.items()},
            "row_counts": {v: dict(c) for v, c in self.row_counts.items()},
            "missing_columns": {v: list(c) for v, c in self.missing_columns.items()},
            "notes": list(self.notes),
            "encodings": dict(self.encodings),
            "rejected": rejected.to_dicts(),
            "rejected_stored": rejected.height,
            "rows_left_out": self.rows_left_out,
            "seconds": round(self.seconds, 3),
        }

    def log_summary(self, log: logging.Logger) -> None:
        """Log one line per view with its row counts, one per rule that fired, and the notes."""
        for view, counts in self.row_counts.items():
            log.info("validation %s: %d rows in, %d rows out", view, counts["input"], counts["output"])
        for view, counts in self.view_rule_counts.items():
            for rule, n in counts.items():
                log.info("validation %s: rule %s (%s) on %d", view, rule, RULES[rule][0], n)
        for note in self.notes:
            log.info("validation note: %s", note)


# --- public entry points -----------------------------------------------------------


def validate_views(raw: RawViews, reference_date: date | None = None) -> tuple[Views, ValidationReport]:
    """Validate the three raw views and choose each item's active routing.

    ``reference_date`` decides which routing versions are valid (default: today).
    Raises DataError when a view lacks a required column. Every other problem is
    counted in the returned report, and the row is kept, corrected or left out as
    the module docstring describes.
    """
    started = perf_counter()
    reference_date = reference_date or date.today()
    report = ValidationReport()

    items, item_rejected = _validate_view(raw.items, schema.ITEM_VIEW, report)
    routings, routing_rejected = _validate_view(raw.routings, schema.ROUTING_VIEW, report)
    work_orders, order_rejected = _validate_view(raw.work_orders, schema.WORK_ORDER_VIEW, report)

    active, not_in_master = _select_active_routings(routings, items, reference_date, report)
    _count_items_without_routing(items, active, report)

    rejected = pl.concat([item_rejected, routing_rejected, not_in_master, order_rejected], how="vertical")
    report.rejected = _cap_rejected(rejected)
    report.seconds = perf_counter() - started

    views = Views(
        items=items,
        routings=routings.drop(_ROW),
        active_routings=active,
        work_orders=work_orders,
    )
    logger.info(
        "validated views in %.2f s: %d items, %d routing rows, %d active routing rows, "
        "%d work-order rows, %d rows left out (reference date %s)",
        report.seconds, items.height, views.routings.height, active.height,
        work_orders.height, report.rows_left_out, reference_date.isoformat(),
    )
    return views, report


def validate_items(frame: pl.DataFrame) -> tuple[pl.DataFrame, ValidationReport]:
    """Validate a frame of item-master rows alone, such as new items to predict.

    The same header, value and duplicate rules apply as to the item master in
    ``validate_views``, but the rows keep their input order. Raises DataError when
    ITEM_CD is missing.
    """
    report = ValidationReport()
    items, rejected = _validate_view(frame, schema.ITEM_VIEW, report, keep_order=True)
    report.rejected = _cap_rejected(rejected)
    return items, report


def data_fingerprint(views: Views) -> str:
    """Return a sha256 hex digest over the validated content of ``views``.

    Equal content gives an equal digest because ``validate_views`` fixes the row
    order of every frame. The digest covers column names, dtypes and values in CSV
    form, so it changes when any value changes. Active routings are a subset of the
    routing rows, so only their keys (ITEM_CD, ROUT_NO, PROC_SEQ) enter the digest.
    """
    digest = hashlib.sha256()
    frames = {
        "items": views.items,
        "routings": views.routings,
        "active_routings": views.active_routings.select("ITEM_CD", "ROUT_NO", "PROC_SEQ"),
        "work_orders": views.work_orders,
    }
    for name, frame in frames.items():
        digest.update(f"{name}|{frame.height}|{list(frame.schema.items())}\n".encode())
        digest.update(frame.write_csv(null_value="\\N", date_format="%Y-%m-%d").encode())
    return digest.hexdigest()


# --- headers -----------------------------------------------------------------------


def _header_key(name: str) -> str:
    """Return the lookup form of a header: NFKC, no whitespace or BOM, upper case."""
    text = unicodedata.normalize("NFKC", str(name)).replace("\ufeff", "").replace("\u200b", "")
    return re.sub(r"\s+", "", text).upper()


_HEADER_LOOKUP: dict[str, str] = {
    **{_header_key(alias): target for alias, target in schema.COLUMN_ALIASES.items()},
    **{_header_key(c): c for columns in schema.VIEW_COLUMNS.values() for c in columns},
}


def canonical_column(header: str) -> str | None:
    """Return the view column that ``header`` names (ERP spelling, alias or Korean header), or None."""
    return _HEADER_LOOKUP.get(_header_key(header))


# Column lists in messages show at most this many names, each cut to this many characters,
# so a binary file read as CSV (thousands of junk headers) still gives a short message.
MAX_LISTED_COLUMNS = 10
MAX_LISTED_COLUMN_CHARS = 40


def format_column_list(columns: Sequence[str]) -> str:
    """Join column names for a message: at most ``MAX_LISTED_COLUMNS`` names, each cut to
    ``MAX_LISTED_COLUMN_CHARS`` characters, then "… and N more".

    Characters that cannot be printed show as "?", and no columns give "(none)".
    """
    if not columns:
        return "(none)"
    shown = []
    for name in columns[:MAX_LISTED_COLUMNS]:
        cut = name[:MAX_LISTED_COLUMN_CHARS] + ("…" if len(name) > MAX_LISTED_COLUMN_CHARS else "")
        # Control characters and line breaks would break the one-line message.
        shown.append("".join(ch if ch.isprintable() else "?" for ch in cut))
    rest = len(columns) - len(shown)
    return ", ".join(shown) + (f" … and {rest} more" if rest else "")


def _has_values(column: pl.Series) -> bool:
    """Return whether ``column`` contains a value that is not empty or a null marker."""
    text = column.cast(pl.String, strict=False).str.strip_chars()
    return bool((text.is_not_null() & ~text.is_in(list(schema.NULL_MARKERS))).any())


def _normalise_headers(frame: pl.DataFrame, view: str, report: ValidationReport) -> pl.DataFrame:
    """Rename alias headers, drop extra columns and add missing optional ones as nulls."""
    wanted = schema.VIEW_COLUMNS[view]
    sources: dict[str, list[str]] = {}  # target column -> source columns that name it
    for source in frame.columns:
        target = _HEADER_LOOKUP.get(_header_key(source))
        if target in wanted:
            sources.setdefault(target, []).append(source)
    chosen: dict[str, str] = {}  # target column -> source column
    for target, names in sources.items():
        if len(names) > 1:
            # Two headers for one column (SETUP_TIME and 준비시간, or JOB_NM twice): use the one
            # that contains values, and raise when several do rather than guess.
            filled = [n for n in names if _has_values(frame.get_column(n))]
            if len(filled) > 1:
                raise DataError(
                    f"{view}: the columns {format_column_list(filled)} all mean {target} and all hold values; "
                    "keep one of them in the file",
                    rows=[{"view": view, "column": n, "reason": f"also read as {target}"} for n in filled],
                )
            names = filled or names
        exact = [n for n in names if _header_key(n) == _header_key(target)]
        chosen[target] = (exact or names)[0]

    renamed = sorted(f"{s} -> {t}" for t, s in chosen.items() if s != t)
    if renamed:
        report.notes.append(Note("headers_renamed", view=view, columns=", ".join(renamed)))
    extra = [c for c in frame.columns if c not in chosen.values()]
    if extra:
        report.notes.append(Note("columns_dropped", view=view, n=len(extra), columns=format_column_list(extra)))

    missing_required = [c for c in _REQUIRED_COLUMNS[view] if c not in chosen]
    if missing_required:
        raise DataError(
            f"{view} lacks the required column {', '.join(missing_required)}; "
            f"columns found: {format_column_list(frame.columns)}",
            rows=[{"view": view, "column": c, "reason": "required column missing"} for c in missing_required],
        )
    missing = [c for c in wanted if c not in chosen]
    if missing:
        report.missing_columns[view] = missing
        report.notes.append(Note("columns_missing", view=view, columns=", ".join(missing)))

    selected = frame.select([pl.col(chosen[c]).alias(c) for c in wanted if c in chosen])
    return selected.with_columns([pl.lit(None, dtype=pl.Null).alias(c) for c in missing]).select(wanted)


# --- value parsing (expressions) ---------------------------------------------------


def _number_from_text(text: pl.Expr) -> pl.Expr:
    """Parse cleaned text to Float64: thousands commas allowed, non-finite values null."""
    plain = pl.when(text.str.contains(_THOUSANDS)).then(text.str.replace_all(",", "", literal=True)).otherwise(text)
    number = plain.cast(pl.Float64, strict=False)
    return pl.when(number.is_finite()).then(number)


def _date_from_number(number: pl.Expr) -> pl.Expr:
    """Read a number as a date: 8 digits are YYYYMMDD, smaller values an Excel serial."""
    as_yyyymmdd = (
        number.floor().cast(pl.Int64, strict=False).cast(pl.String).str.to_date("%Y%m%d", strict=False)
    )
    as_serial = (number.floor() - _EXCEL_EPOCH_SERIAL).cast(pl.Int32, strict=False).cast(pl.Date)
    return (
        pl.when((number >= 10_000_000) & (number <= 99_991_231)).then(as_yyyymmdd)
        .when((number >= 1) & (number <= _EXCEL_MAX_SERIAL)).then(as_serial)
    )


def _date_from_text(text: pl.Expr) -> pl.Expr:
    """Parse cleaned text to Date: year-month-day dates (with any time after), YYYYMMDD, Excel serials."""
    iso = pl.concat_str([text.str.extract(_ISO_DATE, group) for group in (1, 2, 3)], separator="-").str.to_date(
        "%Y-%m-%d", strict=False
    )
    numeric = pl.when(text.str.contains(r"^\d+(\.\d+)?$")).then(text.cast(pl.Float64, strict=False))
    return pl.coalesce(iso, _date_from_number(numeric))


def _flag_from_text(text: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """Map cleaned flag text (any case, ``1.0`` read as ``1``) to Y/N; unknown values null."""
    key = text.str.to_uppercase().str.replace(r"^([01])\.0+$", "${1}")
    return key.replace_strict(mapping, default=None, return_dtype=pl.String)


def _is_text_dtype(dtype: pl.DataType) -> bool:
    """Return whether ``dtype`` is text (or Null) rather than a typed value."""
    return dtype in (pl.String, pl.Null) or isinstance(dtype, (pl.Enum, pl.Categorical))


def _is_flag(column: str) -> bool:
    return column == "INSIDE_FLAG" or column in _FLAG_COLUMNS


def _through_distinct(frame: pl.DataFrame, column: str, parse: Any, dtype: pl.DataType) -> pl.Expr:
    """Return ``parse`` applied to ``column`` by parsing each distinct value once.

    ERP columns repeat few distinct values (flags, units, dates, operation numbers),
    so parsing the distinct values and mapping them back is much faster than
    parsing every row.
    """
    distinct = frame.get_column(column).drop_nulls().unique()
    parsed = pl.DataFrame({column: distinct}).select(parse(pl.col(column))).to_series()
    return pl.col(column).replace_strict(distinct, parsed, default=None, return_dtype=dtype)


def _few_distinct(frame: pl.DataFrame, columns: list[str]) -> set[str]:
    """Return the columns whose distinct values number at most a quarter of the rows."""
    if not columns or frame.height == 0:
        return set()
    counts = frame.select([pl.col(c).n_unique() for c in columns]).row(0, named=True)
    return {c for c, n in counts.items() if n * 4 <= frame.height}


def _clean_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Turn every text column into NFKC-normalised, trimmed text with null markers as null.

    Text columns are the columns that arrive as text and the columns whose contract
    type is text (codes that a typed source delivered as numbers). NFKC runs only
    on columns that hold a non-ASCII character, because it is the slowest step and
    leaves ASCII unchanged.
    """
    columns = [
        c for c, dtype in frame.schema.items()
        if _is_text_dtype(dtype)
        or (schema.clean_dtype(c) == pl.String and not _is_flag(c) and c != _ROW)
    ]
    floats = [c for c, dtype in frame.schema.items() if dtype.is_float()]
    frame = frame.with_columns([pl.col(c).cast(pl.String) for c in columns] + [pl.col(c).fill_nan(None) for c in floats])
    if not columns:
        return frame

    non_ascii = frame.select(
        [(pl.col(c).str.len_bytes() != pl.col(c).str.len_chars()).any().alias(c) for c in columns]
    ).row(0, named=True)
    unicode_columns = [c for c in columns if non_ascii[c]]
    few = _few_distinct(frame, unicode_columns)

    def clean(expr: pl.Expr) -> pl.Expr:
        text = expr.str.normalize("NFKC").str.strip_chars()
        return pl.when(text.is_in(_NULL_MARKERS)).then(None).otherwise(text)

    exprs = []
    for c in columns:
        if c in few:
            exprs.append(_through_distinct(frame, c, clean, pl.String()).alias(c))
        elif c in unicode_columns:
            exprs.append(pl.col(c).str.normalize("NFKC").str.strip_chars().alias(c))
        else:
            exprs.append(pl.col(c).str.strip_chars().alias(c))
    frame = frame.with_columns(exprs)
    return frame.with_columns([
        pl.when(pl.col(c).is_in(_NULL_MARKERS)).then(None).otherwise(pl.col(c)).alias(c)
        for c in columns if c not in few
    ])


def _typed_value(column: str, dtype: pl.DataType, frame: pl.DataFrame, few_distinct: bool) -> pl.Expr | None:
    """Return the expression that gives ``column`` its contract type, or None if it already has it.

    ``dtype`` is the column's type after ``_clean_text``, so String means cleaned
    text. A null result from non-null input marks an unreadable value.
    ``few_distinct`` makes text columns parse through their distinct values.
    """
    target = schema.clean_dtype(column)
    col = pl.col(column)

    if dtype == pl.String and (_is_flag(column) or target != pl.String):
        parse = _text_parser(column)
        if few_distinct:
            return _through_distinct(frame, column, parse, target)
        return parse(col)

    if _is_flag(column):
        mapping = _INSIDE if column == "INSIDE_FLAG" else _YES_NO
        if dtype == pl.Boolean:
            return pl.when(col).then(pl.lit("Y")).when(~col).then(pl.lit("N"))
        if dtype.is_numeric():
            return _flag_from_text(col.cast(pl.Float64).cast(pl.Int64, strict=False).cast(pl.String), mapping)
        return _flag_from_text(col.cast(pl.String), mapping)

    if target == pl.String:
        return None

    if target == pl.Float64:
        number = col.cast(pl.Float64) if (dtype.is_numeric() or dtype == pl.Boolean) else _number_from_text(
            col.cast(pl.String)
        )
        return pl.when(number.is_finite()).then(number)

    if target == pl.Int64:
        if dtype.is_integer():
            return col.cast(pl.Int64)
        number = col.cast(pl.Float64) if dtype.is_numeric() else _number_from_text(col.cast(pl.String))
        return _whole_number(number)

    # target is Date
    if dtype == pl.Date:
        return None
    if isinstance(dtype, pl.Datetime):
        return col.dt.date()
    if dtype.is_numeric():
        return _date_from_number(col.cast(pl.Float64))
    return _date_from_text(col.cast(pl.String))


def _whole_number(number: pl.Expr) -> pl.Expr:
    """Return ``number`` as Int64 where it is a whole number, else null."""
    return pl.when(number == number.floor()).then(number.cast(pl.Int64, strict=False))


def _text_parser(column: str) -> Any:
    """Return the function that parses cleaned text of ``column`` to its contract type."""
    target = schema.clean_dtype(column)
    if _is_flag(column):
        mapping = _INSIDE if column == "INSIDE_FLAG" else _YES_NO
        return lambda expr: _flag_from_text(expr, mapping)
    if target == pl.Float64:
        return _number_from_text
    if target == pl.Int64:
        return lambda expr: _whole_number(_number_from_text(expr))
    return _date_from_text


def _clean_frame(frame: pl.DataFrame) -> tuple[pl.LazyFrame, list[str]]:
    """Return the typed view (plus __row and __bad_* columns) and the columns that may be bad.

    ``__bad_<column>`` contains the input text of a value that could not be read,
    and null elsewhere. Input that already has the contract type is never bad.
    """
    frame = _clean_text(frame.with_row_index(_ROW, offset=1).with_columns(pl.col(_ROW).cast(pl.Int64)))

    parsed_text = [
        c for c, dtype in frame.schema.items()
        if c != _ROW and dtype == pl.String and (_is_flag(c) or schema.clean_dtype(c) != pl.String)
    ]
    few = _few_distinct(frame, parsed_text)
    parsed: dict[str, pl.Expr] = {}
    for column, dtype in frame.schema.items():
        if column == _ROW:
            continue
        value = _typed_value(column, dtype, frame, column in few)
        if value is not None:
            parsed[column] = value
    bad_columns = list(parsed)

    lazy = frame.lazy().with_columns([expr.alias(f"__val_{c}") for c, expr in parsed.items()])
    lazy = lazy.with_columns([
        pl.when(pl.col(f"__val_{c}").is_null() & pl.col(c).is_not_null())
        .then(pl.col(c).cast(pl.String)).alias(f"__bad_{c}")
        for c in bad_columns
    ])
    lazy = lazy.with_columns([pl.col(f"__val_{c}").alias(c) for c in bad_columns])
    return lazy.drop([f"__val_{c}" for c in bad_columns]), bad_columns


# --- per-view validation -----------------------------------------------------------


@dataclass
class _RejectRule:
    """One rejection rule: the condition that rejects a row and the reason text."""

    name: str
    condition: pl.Expr
    reason: pl.Expr


def _validate_view(
    frame: pl.DataFrame, view: str, report: ValidationReport, keep_order: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Validate one view; return it in contract form and its rejected rows (report columns).

    The routing view keeps its ``__row`` column for the active-routing step.
    ``keep_order`` keeps the source row order instead of sorting.
    """
    input_rows = frame.height
    if frame.width == 0:
        report.notes.append(Note("view_empty", view=view))
        report.row_counts[view] = {"input": 0, "output": 0}
        return _finish(_empty_working_frame(view), view, keep_order), pl.DataFrame(schema=_REJECTED_SCHEMA)

    source_problems = _source_problems(frame)
    frame = _normalise_headers(frame.drop(SOURCE_PROBLEM_COLUMN, strict=False), view, report)
    cleaned, bad_columns = _clean_frame(frame)
    if view == schema.ROUTING_VIEW:
        cleaned = _convert_routing_times(cleaned)
    elif view == schema.ITEM_VIEW:
        cleaned = _convert_item_lengths(cleaned)
    judged = _judge_rows(cleaned.collect().join(source_problems, on=_ROW, how="left"), view, bad_columns)

    # Reasons are built for the left-out rows only, since most rows pass.
    left_out_columns = [_ROW, "ITEM_CD", *(["ROUT_NO"] if view == schema.ROUTING_VIEW else []), "__rule", "__reason"]
    left_out = judged.filter(pl.col("__rule").is_not_null())
    left_out = left_out.with_columns(_reasons(left_out, view, bad_columns).alias("__reason")).select(left_out_columns)
    kept = judged.select(*schema.VIEW_COLUMNS[view], _ROW, "__rule").filter(pl.col("__rule").is_null()).drop("__rule")
    kept, key_duplicates = _split_key_duplicates(kept, view)
    left_out = pl.concat([left_out, key_duplicates.select(left_out_columns)], how="vertical")

    for rule, n in left_out.group_by("__rule", maintain_order=True).len().iter_rows():
        report.count(view, rule, n)
    _count_changes(judged, view, bad_columns, report, removed_rows=key_duplicates.get_column(_ROW))

    result = _finish(kept, view, keep_order)
    if view == schema.ROUTING_VIEW:
        _count_routing_order(result, left_out, report)
    report.row_counts[view] = {"input": input_rows, "output": result.height}
    return result, _rejected_rows(left_out, view)


def _source_problems(frame: pl.DataFrame) -> pl.DataFrame:
    """Return ``__row`` (1-based) and ``SOURCE_PROBLEM_COLUMN`` of ``frame``, the column null when absent."""
    problem = (
        pl.col(SOURCE_PROBLEM_COLUMN).cast(pl.String) if SOURCE_PROBLEM_COLUMN in frame.columns
        else pl.lit(None, pl.String).alias(SOURCE_PROBLEM_COLUMN)
    )
    return frame.select(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(_ROW), problem)


def _empty_working_frame(view: str) -> pl.DataFrame:
    """Return an empty frame with the contract columns and ``__row``."""
    return pl.DataFrame(schema={**schema.clean_schema(view), _ROW: pl.Int64()})


def _convert_routing_times(lazy: pl.LazyFrame) -> pl.LazyFrame:
    """Convert the routing time columns to minutes, default RUN_TIME_QTY and the validity dates."""
    unit_key = pl.col("TIME_UNIT").str.to_uppercase()
    factor = unit_key.replace_strict(schema.TIME_UNIT_TO_MINUTES, default=None, return_dtype=pl.Float64)
    lazy = lazy.with_columns(
        pl.col("TIME_UNIT").is_null().alias("__unit_missing"),
        (pl.col("TIME_UNIT").is_not_null() & factor.is_null()).alias("__unit_unknown"),
        pl.col("TIME_UNIT").alias("__unit_given"),
        pl.col("RUN_TIME_QTY").alias("__qty_given"),
        pl.when(pl.col("TIME_UNIT").is_null()).then(1.0).otherwise(factor).alias("__factor"),
        (pl.col("RUN_TIME_QTY").is_null() | (pl.col("RUN_TIME_QTY") <= 0)).alias("__qty_defaulted"),
        pl.col("VALID_FROM_DT").is_null().alias("__validity_from_missing"),
        pl.col("VALID_TO_DT").is_null().alias("__validity_to_missing"),
        (pl.col("VALID_FROM_DT").is_null() | pl.col("VALID_TO_DT").is_null()).alias("__validity_defaulted"),
    )
    return lazy.with_columns(
        *[(pl.col(c) * pl.col("__factor")).alias(c) for c in schema.ROUTING_TIME_COLUMNS],
        pl.when(pl.col("__unit_unknown")).then(pl.col("TIME_UNIT")).otherwise(pl.lit("M")).alias("TIME_UNIT"),
        pl.when(pl.col("__qty_defaulted")).then(1.0).otherwise(pl.col("RUN_TIME_QTY")).alias("RUN_TIME_QTY"),
        pl.col("VALID_FROM_DT").fill_null(OLDEST_VALID_FROM),
        pl.col("VALID_TO_DT").fill_null(OPEN_VALID_TO),
    )


def _convert_item_lengths(lazy: pl.LazyFrame) -> pl.LazyFrame:
    """Convert OUTDIAMETER, INDIAMETER and OUTTHICKNESS from inch to mm where OUTDIAMETER_UNIT is inch."""
    unit = pl.col("OUTDIAMETER_UNIT").str.to_uppercase()
    is_inch = unit.is_in(_INCH_SPELLINGS).fill_null(False)
    is_mm = unit.is_in(_MM_SPELLINGS).fill_null(False)
    lengths = ["OUTDIAMETER", "INDIAMETER", "OUTTHICKNESS"]
    sizes = [*lengths, "IN_SEALSIZE", "MID_SEALSIZE", "OUT_SEALSIZE"]
    converted = lazy.with_columns(
        *[pl.col(c).alias(f"__given_{c}") for c in lengths],
        pl.col("OUTDIAMETER_UNIT").alias("__given_OUTDIAMETER_UNIT"),
        is_inch.alias("__inch"),
        (pl.col("OUTDIAMETER_UNIT").is_not_null() & ~is_inch & ~is_mm).alias("__unit_unknown_length"),
        *[pl.when(is_inch).then(pl.col(c) * INCH_TO_MM).otherwise(pl.col(c)).alias(c) for c in lengths],
        pl.when(is_inch | is_mm).then(pl.lit("mm")).otherwise(pl.col("OUTDIAMETER_UNIT")).alias("OUTDIAMETER_UNIT"),
    )
    # A size of 0 or less is no size, and one above MAX_SIZE_MM is a typing or unit
    # error: both are set empty and counted. An inner diameter that is not below the
    # outer one is kept but reported, since either may be wrong.
    non_positive = pl.any_horizontal([(pl.col(c) <= 0).fill_null(False) for c in lengths])
    absurd = pl.any_horizontal([(pl.col(c).abs() > MAX_SIZE_MM).fill_null(False) for c in sizes])
    return converted.with_columns(
        *[pl.col(c).alias(f"__given_{c}") for c in sizes if c not in lengths],
        non_positive.alias("__non_positive_geometry"),
        absurd.alias("__absurd_size"),
        ((pl.col("INDIAMETER") >= pl.col("OUTDIAMETER")) & (pl.col("INDIAMETER") > 0) & (pl.col("OUTDIAMETER") > 0))
        .fill_null(False)
        .alias("__inner_not_below_outer"),
    ).with_columns(
        *[pl.when((pl.col(c) > 0) & (pl.col(c) <= MAX_SIZE_MM)).then(pl.col(c)).alias(c) for c in lengths],
        *[pl.when(pl.col(c).abs() <= MAX_SIZE_MM).then(pl.col(c)).alias(c) for c in sizes if c not in lengths],
    )


def _judge_rows(frame: pl.DataFrame, view: str, bad_columns: list[str]) -> pl.DataFrame:
    """Add ``__rule``: the first rule that leaves the row out, or null for a kept row.

    The rules are checked in order: exact duplicate, then the view's rejection
    rules. Also adds ``__exact_of``: for an exact duplicate, the first row with the
    same values. Key duplicates are found later among the kept rows, so the first
    valid row of a key is kept.
    """
    # Unreadable input text takes part in the comparison: 'abc' and an empty cell are both
    # null after parsing, yet the rows differ.
    compared = [*schema.VIEW_COLUMNS[view], *[f"__bad_{c}" for c in bad_columns]]
    frame = frame.with_columns(_exact_duplicate_of(frame, compared).alias("__exact_of"))
    rules = [("exact_duplicate", pl.col("__exact_of").is_not_null())]
    rules += [(rule.name, rule.condition) for rule in _reject_rules(view, bad_columns)]
    rule = pl.when(rules[0][1]).then(pl.lit(rules[0][0]))
    for name, condition in rules[1:]:
        rule = rule.when(condition).then(pl.lit(name))
    return frame.with_columns(rule.alias("__rule"))


def _exact_duplicate_of(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """Return, per row, the first earlier row number with the same values in ``columns``, else null.

    Exact duplicates are judged on the cleaned view columns (plus the input text of
    unreadable values), so rows that differ only in dropped columns (such as an ERP
    row id) are duplicates. Rows whose row
    hash repeats are compared value by value, so a hash collision never removes a
    row.
    """
    row_hash = frame.select(pl.struct(columns).hash()).to_series()
    # Sorting the hashes found repeats faster than is_duplicated in Polars 2.1.
    ordered = row_hash.sort()
    repeated_hashes = ordered.filter(ordered == ordered.shift(1))
    if repeated_hashes.is_empty():
        return pl.Series("__exact_of", [None] * frame.height, dtype=pl.Int64)
    repeated = row_hash.is_in(repeated_hashes.implode())
    candidates = frame.filter(repeated).select(
        pl.col(_ROW),
        pl.when(~pl.struct(columns).is_first_distinct()).then(pl.col(_ROW).min().over(columns)).alias("__exact_of"),
    ).filter(pl.col("__exact_of").is_not_null())
    lookup = frame.select(_ROW).join(candidates, on=_ROW, how="left", maintain_order="left")
    return lookup.get_column("__exact_of")


# Key whose repetition removes a row, and the rule name, per view.
_KEY_DUPLICATE_RULES: dict[str, tuple[list[str], str]] = {
    schema.ITEM_VIEW: (["ITEM_CD"], "duplicate_item_cd"),
    schema.ROUTING_VIEW: (["ITEM_CD", "ROUT_NO", "PROC_SEQ"], "duplicate_operation"),
}


def _split_key_duplicates(kept: pl.DataFrame, view: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sort the kept rows by key and source row; return them without repeated keys, and the repeats.

    Views without a key (work orders) are returned unchanged. The repeats carry
    ``__rule`` and ``__reason`` naming the first row of their key, which is kept.
    """
    no_repeats = kept.clear().with_columns(pl.lit(None, pl.String).alias("__rule"), pl.lit(None, pl.String).alias("__reason"))
    keys, rule = _KEY_DUPLICATE_RULES.get(view, ([], ""))
    if not keys:
        return kept, no_repeats

    ordered = kept.sort([*keys, _ROW], nulls_last=True)
    same_key = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys])
    ordered = ordered.with_columns((same_key & (pl.int_range(pl.len()) > 0)).alias("__key_dup"))
    if not ordered.get_column("__key_dup").any():
        return ordered.drop("__key_dup"), no_repeats

    first_row = pl.when(~pl.col("__key_dup")).then(pl.col(_ROW)).forward_fill()
    reason = pl.format(f"{', '.join(keys)} already in row {{}}; the first row is kept", first_row)
    repeats = (
        ordered.with_columns(pl.lit(rule).alias("__rule"), reason.alias("__reason"))
        .filter(pl.col("__key_dup"))
        .drop("__key_dup")
        .sort(_ROW)
    )
    return ordered.filter(~pl.col("__key_dup")).drop("__key_dup"), repeats


def _reasons(left_out: pl.DataFrame, view: str, bad_columns: list[str]) -> pl.Expr:
    """Return the reason text of each left-out row, keyed on its ``__rule``.

    ``left_out`` contains only left-out rows. An exact duplicate's reason names
    the first row with the same values.
    """
    reasons = {rule.name: rule.reason for rule in _reject_rules(view, bad_columns)}
    reasons["exact_duplicate"] = pl.format("exact duplicate of row {}", pl.col("__exact_of"))
    expr = pl.when(pl.lit(False)).then(pl.lit(None, pl.String))
    for name, reason in reasons.items():
        expr = expr.when(pl.col("__rule") == name).then(reason)
    return expr.cast(pl.String)


def _reject_rules(view: str, bad_columns: list[str]) -> list[_RejectRule]:
    """Return the rejection rules of ``view`` in the order they are checked."""
    rules = [
        _RejectRule("ragged_line", pl.col(SOURCE_PROBLEM_COLUMN).is_not_null(), pl.col(SOURCE_PROBLEM_COLUMN)),
        _RejectRule("missing_item_cd", pl.col("ITEM_CD").is_null(), pl.lit("ITEM_CD is empty")),
    ]
    required_numbers = [c for c in _REQUIRED_NUMBERS[view] if c in bad_columns]

    if view in (schema.ROUTING_VIEW, schema.WORK_ORDER_VIEW):
        seq_missing = pl.col("PROC_SEQ").is_null()
        if "PROC_SEQ" in bad_columns:
            seq_missing = seq_missing & pl.col("__bad_PROC_SEQ").is_null()
        rules.append(_RejectRule("missing_proc_seq", seq_missing, pl.lit("PROC_SEQ is empty")))

    if required_numbers:
        condition = pl.any_horizontal([pl.col(f"__bad_{c}").is_not_null() for c in required_numbers])
        reason = pl.coalesce([
            pl.format(
                f"{c} '{{}}' is not {'a whole number' if c == 'PROC_SEQ' else 'a number'}",
                pl.col(f"__bad_{c}"),
            )
            for c in required_numbers
        ])
        rules.append(_RejectRule("not_a_number", condition, reason))

    if view == schema.ROUTING_VIEW:
        rules.append(_RejectRule("missing_job_cd", pl.col("JOB_CD").is_null(), pl.lit("JOB_CD is empty")))
        rules.append(_RejectRule(
            "unknown_time_unit",
            pl.col("__unit_unknown"),
            pl.format(f"TIME_UNIT '{{}}' is not a known unit ({', '.join(schema.TIME_UNIT_TO_MINUTES)})", pl.col("__unit_given")),
        ))
        time_columns = [*schema.ROUTING_TIME_COLUMNS, "MFG_LT"]
        rules.append(_RejectRule(
            "negative_time",
            pl.any_horizontal([pl.col(c) < 0 for c in time_columns]).fill_null(False),
            pl.coalesce([pl.when(pl.col(c) < 0).then(pl.format(f"{c} {{}} is negative", pl.col(c))) for c in time_columns]),
        ))
        run_per_piece = pl.col("RUN_TIME") / pl.col("RUN_TIME_QTY")
        waits = ["SETUP_TIME", "QUEUE_TIME", "WAIT_TIME", "MOVE_TIME"]
        rules.append(_RejectRule(
            "absurd_time",
            ((run_per_piece > MAX_RUN_MIN_PER_PIECE) | pl.any_horizontal([pl.col(c) > MAX_WAIT_MIN for c in waits]))
            .fill_null(False),
            pl.coalesce([
                pl.when(run_per_piece > MAX_RUN_MIN_PER_PIECE).then(
                    pl.format(f"RUN_TIME {{}} min per piece exceeds {MAX_RUN_MIN_PER_PIECE:,.0f} min", run_per_piece)
                ),
                *[
                    pl.when(pl.col(c) > MAX_WAIT_MIN).then(
                        pl.format(f"{c} {{}} min exceeds {MAX_WAIT_MIN:,.0f} min (7 days)", pl.col(c))
                    )
                    for c in waits
                ],
            ]),
        ))

    if view == schema.ROUTING_VIEW:
        rules.append(_RejectRule(
            "negative_run_time_qty",
            (pl.col("__qty_given") < 0).fill_null(False),
            pl.format("RUN_TIME_QTY {} is negative", pl.col("__qty_given")),
        ))
        dates = [c for c in ("VALID_FROM_DT", "VALID_TO_DT") if c in bad_columns]
        inverted = (pl.col("VALID_FROM_DT") > pl.col("VALID_TO_DT")).fill_null(False)
        rules.append(_RejectRule(
            "invalid_validity_date",
            pl.any_horizontal([*[pl.col(f"__bad_{c}").is_not_null() for c in dates], inverted]),
            pl.coalesce([
                *[
                    pl.when(pl.col(f"__bad_{c}").is_not_null()).then(
                        pl.format(f"{c} '{{}}' is not a date (use YYYY-MM-DD)", pl.col(f"__bad_{c}"))
                    )
                    for c in dates
                ],
                pl.format("VALID_FROM_DT {} is after VALID_TO_DT {}", pl.col("VALID_FROM_DT"), pl.col("VALID_TO_DT")),
            ]),
        ))

    if view == schema.WORK_ORDER_VIEW:
        hours = ["SETUP_HOURS", "MACH_WORKED_HOURS"]
        quantities = ["ORDER_QTY", "BAD_QTY"]
        for name, columns in (("negative_hours", hours), ("negative_quantity", quantities)):
            rules.append(_RejectRule(
                name,
                pl.any_horizontal([pl.col(c) < 0 for c in columns]).fill_null(False),
                pl.coalesce([pl.when(pl.col(c) < 0).then(pl.format(f"{c} {{}} is negative", pl.col(c))) for c in columns]),
            ))
        limits = {**dict.fromkeys(hours, MAX_ORDER_HOURS), **dict.fromkeys(quantities, MAX_ORDER_QTY)}
        good = pl.col("ORDER_QTY") - pl.col("BAD_QTY").fill_null(0.0)
        per_piece = pl.when(good > 0).then(pl.col("MACH_WORKED_HOURS") * 60.0 / good)
        rules.append(_RejectRule(
            "absurd_hours",
            pl.any_horizontal([*[pl.col(c) > limit for c, limit in limits.items()], per_piece > MAX_RUN_MIN_PER_PIECE])
            .fill_null(False),
            pl.coalesce([
                *[
                    pl.when(pl.col(c) > limit).then(pl.format(f"{c} {{}} exceeds {limit:,.0f}", pl.col(c)))
                    for c, limit in limits.items()
                ],
                pl.when(per_piece > MAX_RUN_MIN_PER_PIECE).then(
                    pl.format(
                        f"MACH_WORKED_HOURS {{}} for {{}} good pieces is over {MAX_RUN_MIN_PER_PIECE:,.0f} min per piece",
                        pl.col("MACH_WORKED_HOURS"), good,
                    )
                ),
            ]),
        ))
    return rules


def _rejected_rows(frame: pl.DataFrame, view: str) -> pl.DataFrame:
    """Return the report columns (view, row, ITEM_CD, rule, reason) of rejected rows."""
    return frame.select(
        pl.lit(view, dtype=pl.String).alias("view"),
        pl.col(_ROW).cast(pl.Int64).alias("row"),
        pl.col("ITEM_CD").cast(pl.String),
        pl.col("__rule").cast(pl.String).alias("rule"),
        pl.col("__reason").fill_null(pl.col("__rule")).cast(pl.String).alias("reason"),
    )


def _count_changes(
    frame: pl.DataFrame, view: str, bad_columns: list[str], report: ValidationReport, removed_rows: pl.Series
) -> None:
    """Count the kept rows of ``frame`` in which validation set or converted a value.

    Kept rows have a null ``__rule`` and a ``__row`` not in ``removed_rows`` (key duplicates).
    """
    optional_numbers = [
        c for c in bad_columns
        if schema.clean_dtype(c) in (pl.Float64, pl.Int64) and c not in _REQUIRED_NUMBERS[view]
    ]
    dates = [c for c in bad_columns if schema.clean_dtype(c) == pl.Date]
    flags = [c for c in bad_columns if c in _FLAG_COLUMNS]

    def rows_with_bad(columns: list[str]) -> pl.Expr:
        if not columns:
            return pl.lit(False)
        return pl.any_horizontal([pl.col(f"__bad_{c}").is_not_null() for c in columns])

    counts = {
        "number_set_null": rows_with_bad(optional_numbers),
        "invalid_date_set_null": rows_with_bad(dates),
        "unknown_flag_value": rows_with_bad(flags),
        "unknown_inside_flag": rows_with_bad(["INSIDE_FLAG"] if "INSIDE_FLAG" in bad_columns else []),
    }
    if view == schema.ROUTING_VIEW:
        counts |= {
            "time_unit_missing_assumed_minutes": pl.col("__unit_missing"),
            "time_unit_converted": pl.col("__factor") != 1.0,
            "run_time_qty_defaulted": pl.col("__qty_defaulted"),
            "validity_date_defaulted": pl.col("__validity_defaulted"),
            "time_missing": pl.col("SETUP_TIME").is_null() | pl.col("RUN_TIME").is_null(),
        }
    if view == schema.ITEM_VIEW:
        counts |= {
            "inch_converted_to_mm": pl.col("__inch"),
            "non_positive_geometry_set_null": pl.col("__non_positive_geometry"),
            "absurd_size_set_null": pl.col("__absurd_size"),
            "inner_diameter_not_below_outer": pl.col("__inner_not_below_outer"),
            "unknown_length_unit": pl.col("__unit_unknown_length"),
        }
    if view == schema.WORK_ORDER_VIEW:
        good = pl.col("ORDER_QTY") - pl.col("BAD_QTY").fill_null(0.0)
        counts["zero_good_quantity"] = good.is_null() | (good <= 0)

    kept = pl.col("__rule").is_null()
    if removed_rows.len():
        kept = kept & ~pl.col(_ROW).is_in(removed_rows.implode())
    totals = frame.select(
        **{rule: (flag.fill_null(False) & kept).sum().cast(pl.Int64) for rule, flag in counts.items()}
    ).row(0, named=True)
    for rule, n in totals.items():
        report.count(view, rule, n or 0)

    # Keep a few example rows per rule, with the input text that could not be read.
    bad_values = {
        "number_set_null": optional_numbers, "invalid_date_set_null": dates, "unknown_flag_value": flags,
        "unknown_inside_flag": ["INSIDE_FLAG"] if "INSIDE_FLAG" in bad_columns else [],
    }
    examples = []
    for rule, flag in counts.items():
        if not totals[rule]:
            continue
        columns = bad_values.get(rule, [])
        if columns:
            detail = pl.concat_str(
                [pl.when(pl.col(f"__bad_{c}").is_not_null()).then(pl.format("{}={}", pl.lit(c), pl.col(f"__bad_{c}"))) for c in columns],
                separator="; ", ignore_nulls=True,
            )
        else:
            detail = _change_details(view).get(rule, pl.lit(None, dtype=pl.String))
        examples.append(
            frame.filter(flag.fill_null(False) & kept)
            .head(MAX_CHANGED_EXAMPLES)
            .select(
                pl.lit(view).alias("view"), pl.col(_ROW).cast(pl.Int64).alias("row"),
                pl.col("ITEM_CD").cast(pl.String), pl.lit(rule).alias("rule"), detail.alias("detail"),
            )
        )
    if examples:
        if report.changed is not None:
            examples.insert(0, report.changed)
        report.changed = pl.concat(examples, how="vertical")


def _shown(column: str) -> pl.Expr:
    """``column`` as text for a change example: the value, or "null" when empty."""
    return pl.col(column).cast(pl.String).fill_null("null")


def _change_details(view: str) -> dict[str, pl.Expr]:
    """Rule -> expression describing the value before and after, for the change examples.

    The text shows input values and the value set, not prose, so it reads the same
    in every language.
    """
    if view == schema.ROUTING_VIEW:
        return {
            "time_unit_converted": pl.format(
                "TIME_UNIT={} (×{} → M)", _shown("__unit_given"), pl.col("__factor").cast(pl.String).str.strip_suffix(".0")
            ),
            "time_unit_missing_assumed_minutes": pl.lit("TIME_UNIT=null → M"),
            "run_time_qty_defaulted": pl.format("RUN_TIME_QTY={} → 1", _shown("__qty_given")),
            "time_missing": pl.concat_str(
                [pl.when(pl.col(c).is_null()).then(pl.lit(f"{c}=null")) for c in ("SETUP_TIME", "RUN_TIME")],
                separator="; ", ignore_nulls=True,
            ),
            "validity_date_defaulted": pl.concat_str(
                [
                    pl.when(pl.col("__validity_from_missing")).then(pl.lit(f"VALID_FROM_DT=null → {OLDEST_VALID_FROM}")),
                    pl.when(pl.col("__validity_to_missing")).then(pl.lit(f"VALID_TO_DT=null → {OPEN_VALID_TO}")),
                ],
                separator="; ", ignore_nulls=True,
            ),
        }
    if view == schema.ITEM_VIEW:
        lengths = ["OUTDIAMETER", "INDIAMETER", "OUTTHICKNESS"]
        return {
            "inch_converted_to_mm": pl.concat_str(
                [
                    pl.when(pl.col(f"__given_{c}").is_not_null()).then(
                        pl.format("{}={} in → {} mm", pl.lit(c), pl.col(f"__given_{c}"), (pl.col(f"__given_{c}") * INCH_TO_MM).round(3))
                    )
                    for c in lengths
                ],
                separator="; ", ignore_nulls=True,
            ),
            "non_positive_geometry_set_null": pl.concat_str(
                [
                    pl.when(pl.col(f"__given_{c}") <= 0).then(pl.format("{}={} → null", pl.lit(c), pl.col(f"__given_{c}")))
                    for c in lengths
                ],
                separator="; ", ignore_nulls=True,
            ),
            "absurd_size_set_null": pl.concat_str(
                [
                    pl.when(pl.col(c).is_null() & pl.col(f"__given_{c}").is_not_null() & (pl.col(f"__given_{c}") > 0)).then(
                        pl.format("{}={} → null", pl.lit(c), pl.col(f"__given_{c}"))
                    )
                    for c in [*lengths, "IN_SEALSIZE", "MID_SEALSIZE", "OUT_SEALSIZE"]
                ],
                separator="; ", ignore_nulls=True,
            ),
        }
    if view == schema.WORK_ORDER_VIEW:
        return {"zero_good_quantity": pl.format("ORDER_QTY={}, BAD_QTY={}", _shown("ORDER_QTY"), _shown("BAD_QTY"))}
    return {}


def _count_routing_order(routings: pl.DataFrame, rejected: pl.DataFrame, report: ValidationReport) -> None:
    """Count routings stored out of PROC_SEQ order and routings that lost rows to rejection.

    ``routings`` is sorted by ITEM_CD, ROUT_NO and PROC_SEQ and keeps ``__row``, so
    a routing arrived out of order where ``__row`` falls inside it.
    """
    keys = ["ITEM_CD", "ROUT_NO"]
    same_routing = pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys])
    out_of_order = (
        routings.filter(same_routing & (pl.col(_ROW) < pl.col(_ROW).shift(1)))
        .select(keys).unique().height
    )
    report.count(schema.ROUTING_VIEW, "operations_out_of_order", out_of_order)

    # Duplicates leave no gap. Other rejections remove an operation from a routing
    # that still has rows.
    lost = (
        rejected.filter(~pl.col("__rule").is_in(["exact_duplicate", "duplicate_operation"]))
        .filter(pl.col("ITEM_CD").is_not_null())
        .select(keys).unique()
    )
    incomplete = lost.join(routings.select(keys), on=keys, how="semi", nulls_equal=True).height
    report.count(schema.ROUTING_VIEW, "routing_with_rejected_operations", incomplete)


def _finish(frame: pl.DataFrame, view: str, keep_order: bool = False) -> pl.DataFrame:
    """Return the view columns in contract order and dtypes, sorted for a stable order.

    The routing view keeps ``__row`` as its last column. With ``keep_order`` the
    rows stay in source order.
    """
    columns = [pl.col(c).cast(schema.clean_dtype(c)) for c in schema.VIEW_COLUMNS[view]]
    if keep_order:
        extra = [pl.col(_ROW)] if view == schema.ROUTING_VIEW else []
        return frame.sort(_ROW).select(*columns, *extra)
    # Item and routing rows arrive sorted by key from _split_key_duplicates.
    if view == schema.ITEM_VIEW:
        return frame.select(columns)
    if view == schema.ROUTING_VIEW:
        return frame.select(*columns, pl.col(_ROW))
    result = frame.select(columns)
    return result.sort(result.columns, nulls_last=True)


# --- routing versions --------------------------------------------------------------


def _select_active_routings(
    routings: pl.DataFrame, items: pl.DataFrame, reference_date: date, report: ValidationReport
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Choose each item's active routing version; return it and the report rows of unknown items.

    Per item the versions (ROUT_NO) rank: main (any row MAJOR_FLG = Y) and valid on
    ``reference_date`` first, then valid, then any. Within a rank the latest
    VALID_FROM_DT wins (of the rows valid on the date, if any), then the highest
    ROUT_NO. A version that is valid on the date contributes only its rows valid on
    that date, so replaced operations drop out. A version chosen with nothing valid
    contributes all its rows.

    ``routings`` must be sorted by ITEM_CD, ROUT_NO and PROC_SEQ; the result keeps
    that order, which is ITEM_CD then PROC_SEQ with one version per item.
    """
    known = pl.col("ITEM_CD").is_in(items.get_column("ITEM_CD").implode())
    routings = routings.with_columns(known.alias("__known"))
    unknown = routings.filter(~pl.col("__known"))
    if unknown.height:
        report.count(schema.ROUTING_VIEW, "routing_item_not_in_master", unknown.height)
        n_items = unknown.get_column("ITEM_CD").n_unique()
        report.notes.append(
            Note("routing_items_not_in_master", view=schema.ROUTING_VIEW, n_rows=unknown.height, n_items=n_items)
        )
    not_in_master = _rejected_rows(
        unknown.with_columns(
            pl.lit("routing_item_not_in_master").alias("__rule"),
            pl.format("ITEM_CD '{}' is not in the item master", pl.col("ITEM_CD")).alias("__reason"),
        ),
        schema.ROUTING_VIEW,
    )

    # Number the versions along the sorted rows: a new ITEM_CD or ROUT_NO starts one.
    valid_today = (pl.col("VALID_FROM_DT") <= reference_date) & (pl.col("VALID_TO_DT") >= reference_date)
    new_item = pl.col("ITEM_CD").ne_missing(pl.col("ITEM_CD").shift(1))
    new_version = new_item | pl.col("ROUT_NO").ne_missing(pl.col("ROUT_NO").shift(1))
    candidates = routings.filter(pl.col("__known")).with_columns(
        valid_today.alias("__valid"),
        new_item.cum_sum().alias("__item"),
        new_version.cum_sum().alias("__version"),
    )
    versions = (
        candidates.group_by("__version")
        .agg(
            pl.col("__item").first(),
            pl.col("ROUT_NO").first(),
            (pl.col("MAJOR_FLG") == "Y").any().alias("__major"),
            pl.col("__valid").any().alias("__has_valid"),
            pl.col("VALID_FROM_DT").filter(pl.col("__valid")).max().alias("__from_valid"),
            pl.col("VALID_FROM_DT").max().alias("__from_any"),
        )
        .with_columns(
            pl.when(pl.col("__major") & pl.col("__has_valid")).then(0)
            .when(pl.col("__has_valid")).then(1)
            .otherwise(2).alias("__rank"),
            pl.when(pl.col("__has_valid")).then(pl.col("__from_valid")).otherwise(pl.col("__from_any")).alias("__from"),
        )
    )
    chosen = versions.sort(
        ["__item", "__rank", "__from", "ROUT_NO"],
        descending=[False, False, True, True],
        nulls_last=True,
    ).unique(subset="__item", keep="first")
    rank_counts = dict(chosen.group_by("__rank").len().iter_rows())
    report.count(schema.ROUTING_VIEW, "routing_fallback_not_major", rank_counts.get(1, 0))
    report.count(schema.ROUTING_VIEW, "routing_fallback_expired", rank_counts.get(2, 0))

    valid_versions = chosen.filter(pl.col("__rank") < 2).get_column("__version").implode()
    expired_versions = chosen.filter(pl.col("__rank") == 2).get_column("__version").implode()
    active = candidates.filter(
        (pl.col("__version").is_in(valid_versions) & pl.col("__valid"))
        | pl.col("__version").is_in(expired_versions)
    ).select(schema.ROUTING_COLUMNS)
    return active, not_in_master


def _count_items_without_routing(items: pl.DataFrame, active: pl.DataFrame, report: ValidationReport) -> None:
    """Count items of the master that have no active routing and note a few of their codes."""
    without = items.join(active.select("ITEM_CD").unique(), on="ITEM_CD", how="anti").get_column("ITEM_CD")
    report.count(schema.ITEM_VIEW, "item_without_routing", without.len())
    if without.len():
        examples = ", ".join(without.head(5).to_list())
        report.notes.append(Note("items_without_routing", view=schema.ITEM_VIEW, n=without.len(), examples=examples))


def _cap_rejected(rejected: pl.DataFrame) -> pl.DataFrame:
    """Keep at most MAX_STORED_PER_RULE rows per (view, rule) and MAX_STORED_REJECTED in all."""
    rank = pl.int_range(pl.len()).over(["view", "rule"])
    return rejected.filter(rank < MAX_STORED_PER_RULE).head(MAX_STORED_REJECTED)
