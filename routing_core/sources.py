"""Data sources: read the three ERP views from files, the sample generator or ODBC, then validate them.

``read_folder`` reads one file per view (parquet, xlsx or csv) as text where the
format allows, so validation owns the typing and leading zeros survive.
``read_item_list`` reads new items to predict from one such file. ``load_views``
picks the source from the settings and returns validated views with their
report and fingerprint.

Blank CSV lines and blank worksheet rows are skipped, and the report notes
where. The ``row`` of a rejected row therefore counts the data rows below the
header that are not blank: row 1 is the first of them.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

import polars as pl

from routing_core import schema
from routing_core.config import Settings, object_basename
from routing_core.errors import DataError, SourceUnavailableError
from routing_core.i18n import Note
from routing_core.validation import (
    SOURCE_PROBLEM_COLUMN,
    RawViews,
    ValidationReport,
    Views,
    canonical_column,
    data_fingerprint,
    format_column_list,
    validate_items,
    validate_views,
)

if TYPE_CHECKING:
    from fastexcel import ExcelReader

logger = logging.getLogger(__name__)

# File formats of a view file. A folder may contain only one file per view.
FILE_SUFFIXES = (".parquet", ".xlsx", ".csv")

# CSV encodings tried in order with strict decoding. UTF-8 with BOM is recognised
# by its first three bytes; CP949 is the Korean Windows code page (a superset of
# EUC-KR) that Korean Excel writes.
CSV_ENCODINGS = ("utf-8-sig", "utf-8", "cp949")
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_SIGNATURE = b"PK\x03\x04"
_CSV_SEPARATORS = (",", "\t", ";", "|")

# Worksheet rows searched for the header row, so that a title above the header is skipped.
MAX_HEADER_SEARCH_ROWS = 20
# Sheets listed in the message for a workbook without a header row.
MAX_LISTED_SHEETS = 10

# Code columns: text whose leading zeros matter (000123), so codes that arrive as
# numbers are reported.
CODE_COLUMNS = tuple(dict.fromkeys(
    column for columns in schema.VIEW_COLUMNS.values() for column in columns if column.endswith(("_CD", "_NO"))
))

# Example values and line numbers listed in one note.
MAX_NOTE_EXAMPLES = 5

DEFAULT_VIEW_NAMES = (schema.ITEM_VIEW, schema.ROUTING_VIEW, schema.WORK_ORDER_VIEW)

_REQUIRED_COLUMNS = {
    schema.ITEM_VIEW: tuple(schema.ITEM_REQUIRED),
    schema.ROUTING_VIEW: tuple(schema.ROUTING_REQUIRED),
    schema.WORK_ORDER_VIEW: tuple(schema.WORK_ORDER_REQUIRED),
}

# Text that calamine gives for a number cell (123, 12.5, -5, 1e+20). Text cells such
# as 000123 do not match, so only columns with a match are checked for number cells.
_NUMBER_CELL_TEXT = r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$"

# The broken field that Polars names when a quoted field is not closed, or when text
# follows its closing quote (Polars 2.1 error text).
_UNESCAPED_FIELD = re.compile(r"Field `(.*)` is not properly escaped", re.DOTALL)


@dataclass(frozen=True)
class LoadedData:
    """Validated views from one source, with the validation report and data fingerprint.

    ``seconds`` is the wall time of reading (and generating, for the sample source)
    plus validating.
    """

    views: Views
    report: ValidationReport
    fingerprint: str
    source_description: str
    seconds: float


@dataclass(frozen=True)
class _Expected:
    """The columns a file is read for, and the columns that mark its header row.

    A header row names every column of ``required`` and, unless ``any_of`` is
    empty, at least one column of ``any_of``. Names are matched as validation
    matches headers, so Korean aliases count.
    """

    columns: tuple[str, ...]
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def is_header(self, cells: Sequence[str | None]) -> bool:
        """Return whether a row with these cell texts is a header row."""
        found = {canonical_column(cell) for cell in cells if cell}
        return set(self.required) <= found and (not self.any_of or not found.isdisjoint(self.any_of))

    def describe(self) -> str:
        """Return the header requirement for messages."""
        if self.required:
            return f"the required columns {', '.join(self.required)}"
        return f"any of the columns {format_column_list(self.any_of)}"

    def uses(self, header: str) -> bool:
        """Return whether ``header`` names one of ``columns``."""
        return canonical_column(header) in self.columns


def _expected_view(view: str) -> _Expected:
    """Return what a file of ``view`` (a default view name) must contain."""
    return _Expected(tuple(schema.VIEW_COLUMNS[view]), required=_REQUIRED_COLUMNS[view])


_ITEM_LIST = _Expected(tuple(schema.ITEM_COLUMNS), any_of=tuple(schema.ITEM_COLUMNS))


@dataclass(frozen=True)
class _FileRead:
    """One file as read: the raw frame, its text encoding (CSV only) and notes for the report."""

    frame: pl.DataFrame
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)


# --- folder of files ---------------------------------------------------------------


def read_folder(folder: Path, view_names: tuple[str, str, str] | None = None) -> tuple[RawViews, dict[str, str]]:
    """Read the item, routing and work-order views from files in ``folder``.

    Each view is one file named after the view without its schema, such as
    ``BI_ITEM_INFO_VIEW.csv``, in one of the formats of ``FILE_SUFFIXES``.
    ``view_names`` are (item, routing, work order) names and may be qualified
    (``dbo.BI_ITEM_INFO_VIEW``). File names match case-insensitively. The
    work-order file is optional: without it the view is empty. A workbook is read
    from its first sheet whose header row, among the first
    ``MAX_HEADER_SEARCH_ROWS`` rows, names the view's required columns. Returns
    the raw views and the encoding used per CSV file (file name -> encoding).

    Raises DataError when the folder, the item file or the routing file is
    missing, when two files could be the same view (``X.csv`` beside ``X.xlsx``
    or ``x.CSV``), or when a file cannot be read.
    """
    raw, encodings, _ = _read_folder(Path(folder), view_names)
    return raw, encodings


def _read_folder(
    folder: Path, view_names: tuple[str, str, str] | None
) -> tuple[RawViews, dict[str, str], list[str]]:
    """Read the views of ``folder``; also return notes for the validation report."""
    names = tuple(object_basename(n) for n in (view_names or DEFAULT_VIEW_NAMES))
    if not folder.is_dir():
        raise DataError(f"data folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file())

    encodings: dict[str, str] = {}
    notes: list[str] = []
    frames: list[pl.DataFrame] = []
    for view, name in zip(DEFAULT_VIEW_NAMES, names, strict=True):
        path = _find_view_file(folder, files, name)
        if path is None and view == schema.WORK_ORDER_VIEW:
            notes.append(Note("no_work_order_file", name=name, folder=str(folder)))
            frames.append(pl.DataFrame(schema=schema.clean_schema(schema.WORK_ORDER_VIEW)))
            continue
        if path is None:
            expected = ", ".join(f"{name}{suffix}" for suffix in FILE_SUFFIXES)
            raise DataError(f"no file for view {name} in {folder}; expected one of: {expected}")
        read = _read_file(path, _expected_view(view))
        if read.encoding is not None:
            encodings[path.name] = read.encoding
        logger.info("read %s: %d rows, %d columns%s", path, read.frame.height, read.frame.width,
                    f", encoding {read.encoding}" if read.encoding else "")
        notes.append(Note("view_file_read", view=name, file=path.name))
        notes.extend(read.notes)
        frames.append(read.frame)
    return RawViews(items=frames[0], routings=frames[1], work_orders=frames[2]), encodings, notes


def _find_view_file(folder: Path, files: list[Path], view: str) -> Path | None:
    """Return the file of ``view`` among ``files`` (the files of ``folder``), or None.

    Raises DataError when more than one file could be the view, because choosing
    one silently would read a stale copy.
    """
    names = {f"{view}{suffix}".lower() for suffix in FILE_SUFFIXES}
    matches = [path for path in files if path.name.lower() in names]
    if len(matches) > 1:
        listed = ", ".join(path.name for path in matches)
        raise DataError(
            f"{len(matches)} files in {folder} could be the view {view}: {listed}; "
            "keep one of them and move the others out of the folder"
        )
    return matches[0] if matches else None


def _read_file(path: Path, expected: _Expected, data: bytes | None = None) -> _FileRead:
    """Read one view file, or ``data`` in the format that ``path``'s suffix names.

    ``expected`` names the columns whose types are checked and the columns that
    mark the header row of a worksheet.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _read_parquet(path, expected, data)
        if suffix == ".xlsx":
            return _read_xlsx(path, expected, data)
        return _read_csv(path, data)
    except DataError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    """Return the first non-empty line of an exception message, at most 200 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _join_examples(values: pl.Series) -> str:
    """Join the first ``MAX_NOTE_EXAMPLES`` values for a note, with "…" when there are more."""
    joined = ", ".join(str(v) for v in values.head(MAX_NOTE_EXAMPLES).to_list())
    return joined + (" …" if values.len() > MAX_NOTE_EXAMPLES else "")


def _value_examples(values: pl.Series) -> str:
    """Return ``MAX_NOTE_EXAMPLES`` distinct values of ``values`` as text for a note, then "…"."""
    distinct = values.drop_nulls().cast(pl.String).unique(maintain_order=True)
    return _join_examples(distinct)


# --- parquet -------------------------------------------------------------------------


def _read_parquet(path: Path, expected: _Expected, data: bytes | None = None) -> _FileRead:
    """Read a parquet file with its own column types.

    Raises DataError for an expected column of a type that validation cannot read,
    such as a list, struct, duration or binary column. Code columns stored as
    numbers get a note, since their leading zeros are gone.
    """
    frame = pl.read_parquet(path if data is None else io.BytesIO(data))
    for column, dtype in frame.schema.items():
        if expected.uses(column) and not _is_readable_dtype(dtype):
            raise DataError(f"column {column} of {path.name} has type {dtype}; expected text, numbers or dates")

    numeric_codes = [
        column for column, dtype in frame.schema.items()
        if expected.uses(column) and canonical_column(column) in CODE_COLUMNS and dtype.is_numeric()
    ]
    notes: list[str] = []
    if numeric_codes:
        examples = "; ".join(f"{c} ({_value_examples(frame.get_column(c))})" for c in numeric_codes)
        notes.append(Note("code_columns_numeric", file=path.name, columns=examples))
    return _FileRead(frame, notes=notes)


def _is_readable_dtype(dtype: pl.DataType) -> bool:
    """Return whether validation reads a column of ``dtype``: text, numbers, Booleans, dates or times."""
    if dtype.is_numeric() or isinstance(dtype, (pl.Date, pl.Datetime, pl.Time, pl.Categorical, pl.Enum)):
        return True
    return dtype in (pl.String, pl.Null, pl.Boolean)


# --- xlsx ----------------------------------------------------------------------------


def _read_xlsx(path: Path, expected: _Expected, data: bytes | None = None) -> _FileRead:
    """Read the first worksheet whose header row names the ``expected`` columns, every cell as text.

    The header row is the first of a sheet's first ``MAX_HEADER_SEARCH_ROWS`` rows
    that ``expected`` accepts, so a cover sheet and a title above the header are
    skipped. Number cells arrive as their text (``10``, ``12.5``) and date cells as
    ISO text (``2023-07-16 00:00:00``), which validation converts. ``path`` names
    the file in messages.

    Raises DataError when the content is not a workbook that calamine can open
    (such as a CSV file renamed to .xlsx), and when no sheet has such a header
    row although a sheet has cells. A workbook without any cell gives an empty frame.
    """
    from fastexcel import FastExcelError, read_excel

    try:
        reader = read_excel(str(path) if data is None else data)
        return _read_workbook(reader, path, expected)
    except FastExcelError as exc:
        head = data[:4] if data is not None else _file_head(path)
        hint = "" if head.startswith(_ZIP_SIGNATURE) else " (an .xlsx file is a zip archive, but this file is not one)"
        raise DataError(f"cannot read {path.name} as an Excel workbook: {_first_line(exc)}{hint}") from exc


def _file_head(path: Path) -> bytes:
    """Return the first four bytes of the file at ``path``."""
    with path.open("rb") as handle:
        return handle.read(4)


def _load_grid(reader: ExcelReader, sheet: int) -> pl.DataFrame:
    """Return every cell of a sheet as text, without a header.

    Row i of the frame is sheet row i + 1, because leading empty rows are kept.
    The columns are fastexcel's ``__UNNAMED__0`` …
    """
    return pl.DataFrame(reader.load_sheet(sheet, header_row=None, skip_rows=0, dtypes="string"))


def _read_workbook(reader: ExcelReader, path: Path, expected: _Expected) -> _FileRead:
    """Read the first sheet of ``reader`` with a header row that ``expected`` accepts."""
    looked_at: list[str] = []
    sheets_with_cells = 0
    for index, sheet in enumerate(reader.sheet_names):
        grid = _load_grid(reader, index)
        header_row = next(
            (i for i, cells in enumerate(grid.head(MAX_HEADER_SEARCH_ROWS).iter_rows()) if expected.is_header(cells)),
            None,
        )
        if header_row is not None:
            return _sheet_frame(reader, index, grid, header_row, path, expected)
        first_row = next((cells for cells in grid.iter_rows() if any(cells)), None)
        if first_row is None:
            looked_at.append(f"{sheet} (empty)")
            continue
        sheets_with_cells += 1
        looked_at.append(f"{sheet} (first row: {format_column_list([c or '' for c in first_row])})")

    if sheets_with_cells == 0:
        logger.info("%s: no sheet has any cell; the view is empty", path)
        return _FileRead(pl.DataFrame())
    listed = "; ".join(looked_at[:MAX_LISTED_SHEETS])
    if len(looked_at) > MAX_LISTED_SHEETS:
        listed += f" … and {len(looked_at) - MAX_LISTED_SHEETS} more"
    raise DataError(
        f"no sheet of {path.name} has a header row with {expected.describe()} "
        f"in its first {MAX_HEADER_SEARCH_ROWS} rows; sheets looked at: {listed}"
    )


def _sheet_frame(
    reader: ExcelReader, sheet: int, grid: pl.DataFrame, header_row: int, path: Path, expected: _Expected
) -> _FileRead:
    """Return the rows below ``header_row`` of a sheet's ``grid`` as a frame named by the header, blank rows left out."""
    names = _header_names(grid.row(header_row))
    cells = grid.columns
    blank = pl.all_horizontal([pl.col(c).str.strip_chars().fill_null("") == "" for c in cells])
    body = grid.slice(header_row + 1).with_columns(
        pl.int_range(header_row + 2, header_row + 2 + pl.len(), dtype=pl.Int64).alias("__sheet_row"),
        blank.alias("__blank"),
    )
    # NOTE: validation numbers rows by their position in the frame, so after a skipped
    # blank row the reported row is no longer the sheet row minus the header row. The
    # blank-rows note names the sheet rows skipped.
    frame = body.filter(~pl.col("__blank")).select([pl.col(c).alias(n) for c, n in zip(cells, names, strict=True)])

    notes: list[str] = []
    sheet_name = reader.sheet_names[sheet]
    if sheet > 0 or header_row > 0:
        notes.append(Note("xlsx_sheet_read", file=path.name, sheet=sheet_name, row=header_row + 1))
    blank_rows = body.filter(pl.col("__blank")).get_column("__sheet_row")
    if blank_rows.len():
        notes.append(Note("blank_rows_skipped", file=path.name, n=blank_rows.len(), rows=_join_examples(blank_rows)))
        logger.info("%s: %d blank rows skipped", path, blank_rows.len())
    code_cells = [
        (cell, name) for cell, name in zip(cells, names, strict=True)
        if expected.uses(name) and canonical_column(name) in CODE_COLUMNS
    ]
    note = _number_cell_note(reader, sheet, body, code_cells, path)
    if note is not None:
        notes.append(note)
    logger.info("%s: read sheet %r, header on row %d", path, sheet_name, header_row + 1)
    return _FileRead(frame, notes=notes)


def _header_names(cells: Sequence[str | None]) -> list[str]:
    """Return column names from header cells as fastexcel names them.

    An empty cell becomes ``__UNNAMED__<position>`` and a repeated name gets ``_1``,
    ``_2`` … appended.
    """
    names: list[str] = []
    for position, cell in enumerate(cells):
        base = cell if cell else f"__UNNAMED__{position}"
        name, count = base, 0
        while name in names:
            count += 1
            name = f"{base}_{count}"
        names.append(name)
    return names


def _number_cell_note(
    reader: ExcelReader, sheet: int, body: pl.DataFrame, code_cells: list[tuple[str, str]], path: Path
) -> Note | None:
    """Return a note on code columns that contain number cells, or None.

    A number cell loses the leading zeros that its cell format shows (123 shown as
    000123 by the format 000000), because calamine reads the value and not the
    formatted text. ``body`` contains the grid rows below the header with
    ``__sheet_row`` and ``__blank``. ``code_cells`` pairs each grid column of a code
    column with its header.
    """
    data = body.filter(~pl.col("__blank"))
    candidates = [(c, n) for c, n in code_cells if data.get_column(c).str.contains(_NUMBER_CELL_TEXT).any()]
    if not candidates:
        return None

    # fastexcel 0.21 reads a number cell as a Boolean but gives null for a text cell,
    # even for text such as 123, so a non-null Boolean marks a number cell.
    columns = [c for c, _ in candidates]
    as_booleans = pl.DataFrame(reader.load_sheet(
        sheet, header_row=None, skip_rows=0, use_columns=columns, dtypes=dict.fromkeys(columns, "boolean")
    ))
    rows = data.get_column("__sheet_row") - 1
    if rows.len() and as_booleans.height <= int(rows.max() or 0):
        logger.warning("%s: the second read of sheet %d has %d rows, fewer than the first; number cells not checked",
                       path, sheet, as_booleans.height)
        return None
    found: list[str] = []
    total = 0
    for column, name in candidates:
        is_number = as_booleans.get_column(column).gather(rows).is_not_null()
        numbers = data.get_column(column).filter(is_number)
        if numbers.len():
            total += numbers.len()
            found.append(f"{name} ({_value_examples(numbers)})")
    if not found:
        return None
    logger.warning("%s: %d code cells are numbers: %s", path, total, "; ".join(found))
    return Note("code_number_cells", file=path.name, n=total, columns="; ".join(found))


# --- CSV -----------------------------------------------------------------------------


def _read_csv(path: Path, data: bytes | None = None) -> _FileRead:
    """Read a CSV file (or ``data``, named ``path`` in messages) with every column as text.

    The header is the first line with a field that is not empty. Below it, blank
    lines and lines whose fields are all empty are skipped. A line with fewer
    fields than the header, or with more fields of which an extra one is not
    empty, gets a reason in ``SOURCE_PROBLEM_COLUMN``, so validation rejects that
    row under ``ragged_line`` and keeps the others. Extra fields that are empty
    (``a,b,c,,``) are ignored. A quoted field with line breaks is one field, and
    line numbers count its lines.
    """
    data = path.read_bytes() if data is None else data
    encoding, utf8 = _decode_csv(path, data)
    if b"\r" in utf8 and b"\n" not in utf8:
        # Classic Mac line ends (Excel's "CSV (Macintosh)"): one CR per line.
        utf8 = utf8.replace(b"\r", b"\n")
    separator = _guess_separator(utf8)
    records = _csv_records(path, utf8, separator)
    if records.height == 0 or records.get_column("__blank").all():
        return _FileRead(pl.DataFrame(), encoding)

    header_record = int(records.get_column("__blank").arg_min() or 0)
    header_line = int(records.get_column("__line")[header_record])
    header = pl.read_csv(
        utf8, separator=separator, infer_schema=False, n_rows=0, skip_lines=header_line - 1
    ).columns
    _check_header_separator(path, header, separator)
    frame, notes = _csv_rows(path, records.slice(header_record), header)
    return _FileRead(frame, encoding, notes)


def _csv_records(path: Path, utf8: bytes, separator: str) -> pl.DataFrame:
    """Parse every record of ``utf8`` into text columns ``field_0`` … and describe each record.

    The frame has as many ``field_`` columns as the header record (the first that
    is not blank) has fields. A shorter record has nulls at its end. The extra
    fields of a longer one are dropped, so one very wide line cannot blow up the
    frame. ``__line`` is the line where the record starts, ``__fields`` its number
    of fields, ``__filled`` its number of fields up to the last one that is not
    empty, and ``__blank`` whether every field is empty or white space. Polars gives
    no field count of its own, because a missing field and an empty one are both
    null, so the counts come from the lines: the separators outside quoted values.
    """
    lines = _text_lines(utf8)
    line_separators = lines.str.count_matches(separator, literal=True).fill_null(0).cast(pl.Int64)
    described = _describe_records(lines, line_separators, separator)
    filled = described.filter(~pl.col("__blank"))
    width = int(filled.get_column("__fields")[0]) if filled.height else 1
    records = _parse_csv_records(path, utf8, separator, width)
    if described.height > records.height and described.slice(records.height).get_column("__blank").all():
        described = described.head(records.height)  # blank lines at the end that Polars does not return
    if described.height != records.height:
        raise DataError(
            f"cannot read {path.name} as CSV: its quotes do not pair up into records "
            f"({described.height} records by the quotes, {records.height} by the CSV reader); "
            "check for a quote character inside an unquoted value"
        )
    return records.with_columns(described)


def _describe_records(lines: pl.Series, line_separators: pl.Series, separator: str) -> pl.DataFrame:
    """Return ``__line``, ``__fields``, ``__filled`` and ``__blank`` per CSV record, from the file's lines.

    A record goes on to the next line when its quotes so far are odd, so the
    running count of quotes splits the lines into records. Lines of a record with
    quotes are joined and their quoted values removed before the separators are
    counted. A line without quotes in a record of its own is counted as it is.
    """
    blank_chars = f"{separator} \t\r\f\v\u00a0"
    quotes = lines.str.count_matches('"', literal=True).fill_null(0)
    ends_open = (quotes.cum_sum() % 2) == 1
    frame = (
        pl.DataFrame({"text": lines.fill_null(""), "seps": line_separators, "quotes": quotes})
        .with_columns((~ends_open.shift(1, fill_value=False)).alias("__starts"))
        .with_row_index("__line", offset=1)
        .with_columns((pl.col("__starts").cum_sum() - 1).cast(pl.Int64).alias("record"))
    )
    plain_filled = pl.col("text").str.strip_chars_end(blank_chars).str.count_matches(separator, literal=True) + 1
    blank = (pl.col("quotes") == 0) & (pl.col("text").str.strip_chars(blank_chars) == "")
    heads = frame.filter(pl.col("__starts"))
    quoted_records = frame.filter(pl.col("quotes") > 0).get_column("record").unique()
    if quoted_records.is_empty():
        # Without quotes each line is one record, and every separator divides fields.
        return heads.select(
            pl.col("__line").cast(pl.Int64),
            (pl.col("seps") + 1).alias("__fields"),
            plain_filled.cast(pl.Int64).alias("__filled"),
            blank.alias("__blank"),
        )
    unquoted_text = pl.col("text").str.replace_all(r'"[^"]*"', "")
    quoted = (
        frame.filter(pl.col("record").is_in(quoted_records.implode()))
        .group_by("record", maintain_order=True)
        .agg(pl.col("text").str.join("\n"))
        .select(
            "record",
            (unquoted_text.str.count_matches(separator, literal=True) + 1).cast(pl.Int64).alias("quoted_fields"),
            (unquoted_text.str.strip_chars_end(blank_chars).str.count_matches(separator, literal=True) + 1)
            .cast(pl.Int64)
            .alias("quoted_filled"),
        )
    )
    return (
        heads.join(quoted, on="record", how="left", maintain_order="left")
        .select(
            pl.col("__line").cast(pl.Int64),
            pl.coalesce("quoted_fields", pl.col("seps") + 1).alias("__fields"),
            pl.coalesce("quoted_filled", plain_filled.cast(pl.Int64)).alias("__filled"),
            blank.alias("__blank"),
        )
    )


def _text_lines(utf8: bytes) -> pl.Series:
    """Return the lines of ``utf8`` as text, empty lines as null; the final line break ends the last line."""
    if b"\x1f" not in utf8:
        # Reading with a separator and quote that never occur gives one column of whole lines,
        # several times faster than splitting the text.
        lines = pl.read_csv(
            utf8, has_header=False, separator="\x1f", quote_char=None, schema={"line": pl.String}, raise_if_empty=False
        )
        return lines.get_column("line")
    lines = pl.Series("line", [utf8], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
    if utf8.endswith(b"\n"):
        lines = lines.head(lines.len() - 1)
    return lines.str.strip_suffix("\r").replace("", None)


def _parse_csv_records(path: Path, utf8: bytes, separator: str, width: int) -> pl.DataFrame:
    """Parse ``utf8`` without a header into ``width`` text columns ``field_0`` …; extra fields are dropped."""
    try:
        return pl.read_csv(
            utf8,
            separator=separator,
            has_header=False,
            schema={f"field_{i}": pl.String for i in range(width)},
            missing_columns="insert",
            truncate_ragged_lines=True,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise DataError(_csv_error(path, utf8, exc)) from exc


def _csv_rows(path: Path, records: pl.DataFrame, header: list[str]) -> tuple[pl.DataFrame, list[str]]:
    """Return the data rows of ``records`` (from ``_csv_records``, starting with the header record) and notes."""
    fields = [c for c in records.columns if c.startswith("field_")]
    width = len(header)
    wrong = (pl.col("__fields") < width) | (pl.col("__filled") > width)
    reason = pl.when(wrong).then(pl.format("line {} has {} fields, header has {}", "__line", "__fields", pl.lit(width)))
    data = records.slice(1)
    rows = data.filter(~pl.col("__blank")).with_columns(reason.alias(SOURCE_PROBLEM_COLUMN))

    frame = rows.select([pl.col(f).alias(h) for f, h in zip(fields[:width], header, strict=True)])
    problems = rows.get_column(SOURCE_PROBLEM_COLUMN).drop_nulls()
    if problems.len():
        logger.warning("%s: %d lines have a wrong number of fields, first: %s", path, problems.len(), problems[0])
        frame = frame.with_columns(rows.get_column(SOURCE_PROBLEM_COLUMN))

    notes: list[str] = []
    blank_lines = data.filter(pl.col("__blank")).get_column("__line")
    if blank_lines.len():
        lines = _join_examples(blank_lines)
        notes.append(Note("blank_lines_skipped", file=path.name, n=blank_lines.len(), lines=lines))
        logger.info("%s: %d blank lines skipped", path, blank_lines.len())
    return frame, notes


def _csv_error(path: Path, utf8: bytes, exc: pl.exceptions.PolarsError) -> str:
    """Return the message for CSV that Polars cannot parse.

    When Polars names a broken quoted field, the message gives the line where that
    field starts. Otherwise it names the first line with an odd number of quotes,
    if any, because a quote that is not closed, or that appears inside a field
    without quotes, leaves its line with an odd number.
    """
    match = _UNESCAPED_FIELD.search(str(exc))
    offset = utf8.find(match.group(1).encode("utf-8")) if match else -1
    if match is None or offset < 0:
        lines = pl.Series([utf8], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
        odd = (lines.str.count_matches('"', literal=True) % 2 == 1).arg_true()
        if odd.len():
            return (
                f"cannot read {path.name} as CSV: a quote is not closed, or appears inside a field without "
                f"quotes; line {odd[0] + 1} is the first line with an odd number of quotes"
            )
        return f"cannot read {path.name} as CSV: {_first_line(exc)}"

    broken = match.group(1)
    line = _line_of(utf8, offset)
    excerpt = broken.split("\n", 1)[0].strip()[:40]
    if "\n" in broken or '"' not in broken[1:].replace('""', ""):
        return (
            f"cannot read {path.name}: line {line}: a quoted field is not closed ({excerpt}); "
            'end it with a quote and write each quote inside it as two quotes ("")'
        )
    return (
        f"cannot read {path.name}: line {line}: text follows the closing quote of a quoted field ({excerpt}); "
        'put the whole field in quotes and write each quote inside it as two quotes ("")'
    )


def _check_header_separator(path: Path, header: list[str], separator: str) -> None:
    """Raise DataError when a header joins known column names with a separator other than ``separator``.

    Such a header (``ITEM_CD;ITEM_NM`` in a file read with commas) means that the
    file mixes separators or that the separator was guessed wrongly, so its
    columns would be read wrongly.
    """
    others = [s for s in _CSV_SEPARATORS if s != separator]
    splitter = re.compile("|".join(re.escape(s) for s in others))
    for name in header:
        parts = splitter.split(name)
        known = [part.strip() for part in parts if canonical_column(part) is not None]
        if len(parts) < 2 or not known or canonical_column(name) is not None:
            continue
        joiner = next(s for s in others if s in name)
        raise DataError(
            f"{path.name}: the header {name!r} joins the column names {', '.join(known)} with {joiner!r}, "
            f"but the file was read with {separator!r} as separator, so the separator looks wrong; "
            "save the file with one separator throughout"
        )


def _decode_csv(path: Path, data: bytes) -> tuple[str, bytes]:
    """Detect the encoding of CSV bytes; return it and the content as UTF-8 without BOM.

    Raises DataError naming the file when the bytes contain NUL (binary data or
    UTF-16 text), and when they decode in none of ``CSV_ENCODINGS``. The message
    gives the byte offset and line where each encoding failed.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"cannot read {path.name} as CSV text: it contains a NUL byte at byte {nul} "
            f"(line {_line_of(data, nul)}), so it is binary data or UTF-16 text; "
            "save it as CSV UTF-8 (or CP949), or upload the workbook as .xlsx"
        )
    if data.startswith(_UTF8_BOM):
        body = data[len(_UTF8_BOM):]
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = exc.start + len(_UTF8_BOM)
            raise DataError(
                f"{path.name} starts with a UTF-8 BOM but is not valid UTF-8: "
                f"byte {offset} (line {_line_of(data, offset)}) cannot be decoded"
            ) from exc
        return "utf-8-sig", body

    failures = []
    for encoding in ("utf-8", "cp949"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            failures.append(f"as {encoding.upper()} byte {exc.start} (line {_line_of(data, exc.start)}) cannot be decoded")
            continue
        return encoding, data if encoding == "utf-8" else text.encode("utf-8")
    raise DataError(
        f"{path.name} is neither UTF-8 nor CP949 text: {'; '.join(failures)}. "
        "Save it as CSV UTF-8 (or CP949) and try again"
    )


def _line_of(data: bytes, offset: int) -> int:
    """Return the 1-based line number of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


def _guess_separator(data: bytes) -> str:
    """Return the separator that occurs most often in the header line (comma on ties)."""
    header = data.lstrip(b"\r\n").split(b"\n", 1)[0].decode("utf-8", errors="replace")
    counts = {sep: header.count(sep) for sep in _CSV_SEPARATORS}
    best = max(_CSV_SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


# --- item lists ----------------------------------------------------------------------


def read_item_list(source: Path | bytes, filename: str | None = None) -> tuple[pl.DataFrame, ValidationReport]:
    """Read new items (item-master columns) from one CSV, xlsx or parquet file and validate them.

    ``source`` is a path or the file's bytes (an upload). The format comes from
    the suffix of the path, or for bytes from ``filename``; bytes without a file
    name are recognised as xlsx or parquet by their first bytes, else read as
    CSV. Headers may be ERP names or Korean aliases, CSV may be UTF-8 (with
    or without BOM) or CP949. A workbook is read from its first sheet with a
    header row that names an item-master column.

    Rows keep the file's order, and blank lines and rows are skipped. When the
    file has no ITEM_CD column, the items get the codes ``NEW-1``, ``NEW-2`` … in
    file order. Rows with an empty ITEM_CD in a file that has the column are
    rejected and counted in the report. So are CSV lines with fewer or more
    fields than the header (rule ``ragged_line``). Raises DataError when the file
    is missing or unreadable, or has no item-master column or no data rows.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data: bytes | None = bytes(source)
        path = Path(filename or f"upload{_sniff_suffix(data)}")
    else:
        data = None
        path = Path(source)
        if not path.is_file():
            raise DataError(f"item list not found: {path}")
    read = _read_file(path, _ITEM_LIST, data)
    frame = read.frame
    if frame.width and not any(_ITEM_LIST.uses(c) for c in frame.columns):
        found = [c for c in frame.columns if c != SOURCE_PROBLEM_COLUMN]
        raise DataError(
            f"item list {path.name} has no item-master column; columns found: {format_column_list(found)}. "
            "Name the columns as in the item master (ITEM_CD, PART_TYPE, OUTDIAMETER …) "
            "or with their Korean headers (품목코드, 부품유형, 외경 …)"
        )
    if frame.height == 0:
        raise DataError(f"item list {path} has no data rows")
    if not any(canonical_column(c) == "ITEM_CD" for c in frame.columns):
        frame = frame.with_columns(pl.format("NEW-{}", pl.int_range(1, pl.len() + 1)).alias("ITEM_CD"))

    items, report = validate_items(frame)
    if read.encoding is not None:
        report.encodings[path.name] = read.encoding
    report.notes[:0] = read.notes
    if report.rows_left_out:
        report.notes.append(Note("item_list_rows_left_out", n=report.rows_left_out, total=frame.height, file=path.name))
    logger.info("read item list %s: %d items, %d rows left out", path, items.height, report.rows_left_out)
    return items, report


def _sniff_suffix(data: bytes) -> str:
    """Return the file suffix that the first bytes suggest: ``.xlsx`` (zip), ``.parquet`` or ``.csv``."""
    if data.startswith(_ZIP_SIGNATURE):
        return ".xlsx"
    if data.startswith(b"PAR1"):
        return ".parquet"
    return ".csv"


# --- settings-driven loading -------------------------------------------------------


def load_views(settings: Settings) -> LoadedData:
    """Read the views from the source that ``settings.data_source`` names and validate them.

    ``sample`` first generates the sample data into ``settings.data_dir`` when its
    three parquet files are missing, then reads that folder. ``files`` reads
    ``settings.data_dir``, and ``odbc`` reads the configured views through
    ``routing_core.odbc``. Raises DataError for unusable data and
    SourceUnavailableError when the ODBC source cannot be used on this machine.
    """
    started = perf_counter()
    logger.info("loading views from source %s", settings.data_source)
    notes: list[str] = []
    encodings: dict[str, str] = {}

    if settings.data_source == "sample":
        _ensure_sample(settings)
        raw, encodings, notes = _read_folder(settings.data_dir, DEFAULT_VIEW_NAMES)
        description = Note("source_sample", n=settings.sample_items, seed=settings.sample_seed, folder=str(settings.data_dir))
    elif settings.data_source == "files":
        names = (settings.item_view, settings.routing_view, settings.work_order_view)
        raw, encodings, notes = _read_folder(settings.data_dir, names)
        description = Note("source_files", folder=str(settings.data_dir))
    else:
        raw = _read_odbc(settings)
        description = Note("source_odbc", views=", ".join((settings.item_view, settings.routing_view, settings.work_order_view)))

    views, report = validate_views(raw, reference_date=settings.reference_date)
    report.encodings.update(encodings)
    report.notes[:0] = notes
    report.notes.extend(_feature_notes(settings, views, report))
    fingerprint = data_fingerprint(views)

    seconds = perf_counter() - started
    for file_name, encoding in encodings.items():
        logger.info("file %s read as %s", file_name, encoding)
    report.log_summary(logger)
    logger.info(
        "loaded %s in %.2f s: %d items, %d routing rows, %d work-order rows, fingerprint %s",
        description, seconds, views.items.height, views.routings.height,
        views.work_orders.height, fingerprint[:12],
    )
    return LoadedData(
        views=views,
        report=report,
        fingerprint=fingerprint,
        source_description=description,
        seconds=seconds,
    )


def _ensure_sample(settings: Settings) -> None:
    """Generate the sample data into ``settings.data_dir`` unless its three parquet files exist."""
    folder = settings.data_dir
    expected = [folder / f"{name}.parquet" for name in DEFAULT_VIEW_NAMES]
    if all(path.is_file() for path in expected):
        return
    from routing_core import sample

    logger.info("generating sample data: %d items, seed %d, into %s",
                settings.sample_items, settings.sample_seed, folder)
    folder.mkdir(parents=True, exist_ok=True)
    sample.generate_sample(settings.sample_items, folder, settings.sample_seed)


def _read_odbc(settings: Settings) -> RawViews:
    """Read the views through ``routing_core.odbc.read_views_odbc``, imported only when used."""
    try:
        odbc = importlib.import_module("routing_core.odbc")
    except ModuleNotFoundError as exc:
        if exc.name in ("routing_core.odbc", "pyodbc"):
            raise SourceUnavailableError(
                f"the ODBC data source is not available on this installation ({exc.name} is missing); "
                "use ROUTING_DATA_SOURCE=files or sample"
            ) from exc
        raise
    return odbc.read_views_odbc(settings)


def _feature_notes(settings: Settings, views: Views, report: ValidationReport) -> list[str]:
    """Return notes on configured feature columns that the item master lacks or leaves empty."""
    known = set(schema.ITEM_COLUMNS)
    missing_from_source = set(report.missing_columns.get(schema.ITEM_VIEW, []))
    names = [f.name for f in settings.features]
    missing = [n for n in names if n not in known or n in missing_from_source]
    notes = []
    if missing:
        notes.append(Note("feature_columns_missing", columns=", ".join(missing)))
    present = [n for n in names if n in known and n not in missing_from_source]
    if present and views.items.height:
        null_counts = views.items.select(present).null_count().row(0, named=True)
        empty = [n for n in present if null_counts[n] == views.items.height]
        if empty:
            notes.append(Note("feature_columns_empty", columns=", ".join(empty)))
    return notes
