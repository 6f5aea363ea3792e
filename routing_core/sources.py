"""Data sources: read the three ERP views from files, the sample generator or ODBC, then validate them.

``read_folder`` reads one file per view (parquet, xlsx or csv) as text where the
format allows, so validation owns the typing and leading zeros survive.
``load_views`` picks the source from the settings and returns validated views
with their report and fingerprint.
"""

from __future__ import annotations

import importlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

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
    validate_items,
    validate_views,
)

logger = logging.getLogger(__name__)

# File formats per view, most preferred first.
FILE_SUFFIXES = (".parquet", ".xlsx", ".csv")

# CSV encodings tried in order with strict decoding. UTF-8 with BOM is recognised
# by its first three bytes; CP949 is the Korean Windows code page (a superset of
# EUC-KR) that Korean Excel writes.
CSV_ENCODINGS = ("utf-8-sig", "utf-8", "cp949")
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_SIGNATURE = b"PK\x03\x04"
_CSV_SEPARATORS = (",", "\t", ";", "|")

DEFAULT_VIEW_NAMES = (schema.ITEM_VIEW, schema.ROUTING_VIEW, schema.WORK_ORDER_VIEW)


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


# --- folder of files ---------------------------------------------------------------


def read_folder(folder: Path, view_names: tuple[str, str, str] | None = None) -> tuple[RawViews, dict[str, str]]:
    """Read the item, routing and work-order views from files in ``folder``.

    Each view is one file named after the view without its schema, such as
    ``BI_ITEM_INFO_VIEW.csv``. ``view_names`` are (item, routing, work order)
    names and may be qualified (``dbo.BI_ITEM_INFO_VIEW``). File names match
    case-insensitively, and parquet is preferred to xlsx and xlsx to csv. The
    work-order file is optional: without it the view is empty. Returns the raw
    views and the encoding used per CSV file (file name -> encoding).

    Raises DataError when the folder, the item file or the routing file is
    missing, or when a file cannot be read.
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
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}

    encodings: dict[str, str] = {}
    notes: list[str] = []
    frames: list[pl.DataFrame] = []
    for index, name in enumerate(names):
        path = _find_view_file(files, name)
        if path is None and index == 2:
            notes.append(Note("no_work_order_file", name=name, folder=str(folder)))
            frames.append(pl.DataFrame(schema=schema.clean_schema(schema.WORK_ORDER_VIEW)))
            continue
        if path is None:
            expected = ", ".join(f"{name}{suffix}" for suffix in FILE_SUFFIXES)
            raise DataError(f"no file for view {name} in {folder}; expected one of: {expected}")
        frame, encoding = _read_file(path)
        if encoding is not None:
            encodings[path.name] = encoding
        logger.info("read %s: %d rows, %d columns%s", path, frame.height, frame.width,
                    f", encoding {encoding}" if encoding else "")
        frames.append(frame)
    return RawViews(items=frames[0], routings=frames[1], work_orders=frames[2]), encodings, notes


def _find_view_file(files: dict[str, Path], view: str) -> Path | None:
    """Return the preferred file for ``view`` among ``files`` (lower-case name -> path)."""
    for suffix in FILE_SUFFIXES:
        path = files.get(f"{view}{suffix}".lower())
        if path is not None:
            return path
    return None


def _read_file(path: Path, data: bytes | None = None) -> tuple[pl.DataFrame, str | None]:
    """Read one view file, or ``data`` in the format that ``path``'s suffix names; return the frame and the text encoding (CSV only)."""
    suffix = path.suffix.lower()
    source: Path | io.BytesIO = path if data is None else io.BytesIO(data)
    try:
        if suffix == ".parquet":
            return pl.read_parquet(source), None
        if suffix == ".xlsx":
            return _read_xlsx(source, path), None
        return _read_csv(path, data)
    except DataError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {_first_line(exc)}") from exc


def _read_xlsx(source: Path | io.BytesIO, path: Path) -> pl.DataFrame:
    """Read the first sheet of a workbook with every column as text.

    Numeric cells arrive as their text (``10``, ``12.5``) and date cells as Excel
    serial numbers, which validation converts. ``path`` names the file in
    messages. Raises DataError when the content is not a workbook that calamine
    can open, such as a CSV file renamed to .xlsx.
    """
    from fastexcel import FastExcelError

    try:
        return pl.read_excel(
            source,
            sheet_id=1,
            engine="calamine",
            infer_schema_length=0,
            drop_empty_rows=True,
            drop_empty_cols=False,
            raise_if_empty=False,
        )
    except FastExcelError as exc:
        head = source.getvalue()[:4] if isinstance(source, io.BytesIO) else _file_head(source)
        hint = "" if head.startswith(_ZIP_SIGNATURE) else " (an .xlsx file is a zip archive, but this file is not one)"
        raise DataError(f"cannot read {path.name} as an Excel workbook: {_first_line(exc)}{hint}") from exc


def _file_head(path: Path) -> bytes:
    """Return the first four bytes of the file at ``path``."""
    with path.open("rb") as handle:
        return handle.read(4)


def _first_line(exc: Exception) -> str:
    """Return the first non-empty line of an exception message, at most 200 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _read_csv(path: Path, data: bytes | None = None) -> tuple[pl.DataFrame, str]:
    """Read a CSV file (or ``data``, named ``path`` in messages) with every column as text; return it and the detected encoding."""
    data = path.read_bytes() if data is None else data
    encoding, utf8 = _decode_csv(path, data)
    separator = _guess_separator(utf8)
    try:
        frame = pl.read_csv(
            utf8,
            separator=separator,
            infer_schema=False,
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        frame = _read_ragged_csv(path, utf8, separator)
        if frame is None:
            raise DataError(f"cannot read {path.name} as CSV: {_first_line(exc)}") from exc
    return frame, encoding


def _read_ragged_csv(path: Path, utf8: bytes, separator: str) -> pl.DataFrame | None:
    """Read CSV whose lines may have more fields than the header; return None when no line does.

    Each line with more non-empty fields than the header gets a reason in
    ``SOURCE_PROBLEM_COLUMN``, so validation rejects that row and keeps the
    others. Extra fields that are empty (``a,b,c,,``) are ignored. The line
    number counts line breaks inside quoted fields.
    """
    # NOTE: the widest physical line bounds the fields of a record unless a quoted field
    # spans lines. A longer record fails this read too, and the caller reports the file
    # as unreadable without a line number.
    lines = pl.Series(utf8.decode("utf-8").split("\n"))
    try:
        header = pl.read_csv(utf8, separator=separator, infer_schema=False, n_rows=0).columns
        width = max(len(header), int(lines.str.count_matches(separator, literal=True).max() or 0) + 1)
        names = [f"field_{i}" for i in range(width)]
        records = pl.read_csv(
            utf8,
            separator=separator,
            has_header=False,
            schema={name: pl.String for name in names},
            missing_columns="insert",
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None

    header_lines = 1 + sum(name.count("\n") for name in header)
    record_lines = 1 + pl.sum_horizontal([pl.col(n).str.count_matches("\n").fill_null(0) for n in names])
    first_line = header_lines + 1 + record_lines.cum_sum() - record_lines
    fields = pl.max_horizontal([pl.when(pl.col(n).is_not_null()).then(i + 1) for i, n in enumerate(names)])
    reason = pl.format("line {} has {} fields, header has {}", first_line, fields, pl.lit(len(header)))
    data = records.slice(1).with_columns(
        pl.when(fields > len(header)).then(reason).otherwise(None).alias(SOURCE_PROBLEM_COLUMN)
    )
    ragged = data.get_column(SOURCE_PROBLEM_COLUMN).drop_nulls()
    if ragged.is_empty():
        return None
    logger.warning("%s: %d lines have more fields than the header, first: %s", path, ragged.len(), ragged[0])
    return data.select(
        *[pl.col(n).alias(h) for n, h in zip(names[: len(header)], header, strict=True)], SOURCE_PROBLEM_COLUMN
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
    header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    counts = {sep: header.count(sep) for sep in _CSV_SEPARATORS}
    best = max(_CSV_SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def read_item_list(source: Path | bytes, filename: str | None = None) -> tuple[pl.DataFrame, ValidationReport]:
    """Read new items (item-master columns) from one CSV, xlsx or parquet file and validate them.

    ``source`` is a path or the file's bytes (an upload). The format comes from
    the suffix of the path, or for bytes from ``filename``; bytes without a file
    name are recognised as xlsx or parquet by their first bytes, else read as
    CSV. Headers may be ERP names or Korean aliases, CSV may be UTF-8 (with
    or without BOM) or CP949.

    Rows keep the file's order. When the file has no ITEM_CD column, the items get
    the codes ``NEW-1``, ``NEW-2`` … in file order; rows with an empty ITEM_CD in a
    file that has the column are rejected and counted in the report, and so are
    CSV lines with more fields than the header (rule ``ragged_line``). Raises
    DataError when the file is missing, unreadable or has no data rows.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data: bytes | None = bytes(source)
        path = Path(filename or f"upload{_sniff_suffix(data)}")
    else:
        data = None
        path = Path(source)
        if not path.is_file():
            raise DataError(f"item list not found: {path}")
    frame, encoding = _read_file(path, data)
    if frame.height == 0:
        raise DataError(f"item list {path} has no data rows")
    if not any(canonical_column(c) == "ITEM_CD" for c in frame.columns):
        frame = frame.with_columns(pl.format("NEW-{}", pl.int_range(1, pl.len() + 1)).alias("ITEM_CD"))

    items, report = validate_items(frame)
    if encoding is not None:
        report.encodings[path.name] = encoding
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
    report.notes.extend(notes)
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
