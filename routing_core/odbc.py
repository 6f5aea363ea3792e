"""ODBC source of the three ERP views, and the all-or-nothing write into the ERP staging table.

``pyodbc`` is imported inside the functions that use it, so the package imports
(and the app starts) on a machine without unixODBC. There ``odbc_available``
returns the reason and the install hint.

Reading: ``read_views_odbc`` selects the contract columns of ``schema.VIEW_COLUMNS``
that exist in each view (names matched without regard to case, the ERP spelling
INSIDE_FLG included) in batches of ``settings.odbc_batch_size`` rows, and returns
raw frames for ``validation.validate_views``. It reads through arrow-odbc where
that is installed, because bench/bench_odbc_read.py measured 1.6 (SQLite) to 3
(PostgreSQL) times less CPU time than with pyodbc rows (docs/benchmarks.md), and
through ``polars.read_database`` over pyodbc otherwise.

Writing: ``write_staging`` checks that the staging table has every export column
of the rows and every row against the table's column types, lengths and
nullability, then inserts all rows in one transaction and reads the text values
back before COMMIT. A missing column, any rejected row, a value the database
changed or a database error means nothing is written.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import polars as pl

from routing_core import schema
from routing_core.config import Settings, validate_identifier
from routing_core.errors import ConfigError, DataError, ExportError, SourceUnavailableError
from routing_core.validation import RawViews

logger = logging.getLogger(__name__)

# Routing detail columns the ERP takes back, in the ERP's spelling (INSIDE_FLG).
ERP_EXPORT_COLUMNS = [
    "ITEM_CD", "ROUT_NO", "PROC_SEQ", "JOB_CD", "JOB_NM", "RES_CD", "WC_CD", "INSIDE_FLG",
    "TIME_UNIT", "SETUP_TIME", "RUN_TIME", "RUN_TIME_QTY", "QUEUE_TIME", "WAIT_TIME",
    "MOVE_TIME", "MFG_LT", "INSP_FLG", "MILESTONE_FLG", "BP_CD", "VALID_FROM_DT", "VALID_TO_DT",
]
# Export columns that contain codes. The text is the value, so ``000123`` must keep its zeros.
ERP_CODE_COLUMNS = ("ITEM_CD", "ROUT_NO", "JOB_CD", "RES_CD", "WC_CD", "BP_CD")

INSTALL_HINT = (
    "Install unixODBC and an ODBC driver: on Debian or Ubuntu `apt-get install unixodbc`; "
    "for SQL Server also the Microsoft ODBC Driver 18 for SQL Server (package msodbcsql18); "
    "then `pip install pyodbc` in the app's environment."
)

LOGIN_TIMEOUT_SECONDS = 30

# SQL Server accepts at most 2,100 parameters in one statement.
MAX_PARAMETERS_PER_QUERY = 1000

# Characters buffered per text value by arrow-odbc for a column whose declared size
# is unknown or larger (nvarchar(max), text); 4,000 is SQL Server's nvarchar(n) limit.
ARROW_MAX_TEXT_SIZE = 4000

# Connection string keys whose values are hidden (compared in lower case).
_SECRET_KEYS = frozenset({"pwd", "password", "uid", "user", "user id", "username"})

# SQLSTATE classes that mean the server or driver cannot be reached or used
# (08 connection, 28 authorisation, IM driver manager, HYT timeouts).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "28", "IM", "HYT")

ColumnKind = Literal["string", "integer", "decimal", "float", "date", "datetime", "other"]
ReadEngine = Literal["auto", "arrow-odbc", "pyodbc"]


# --- availability and masking ----------------------------------------------------


def odbc_available() -> tuple[bool, str]:
    """Return (True, library versions and installed drivers) or (False, reason and install hint)."""
    try:
        import pyodbc
    except ImportError as exc:
        return False, f"ODBC is not available: {exc}. {INSTALL_HINT}"

    drivers = ", ".join(pyodbc.drivers()) or "none"
    arrow = "arrow-odbc installed" if _arrow_odbc_module() is not None else "arrow-odbc not installed (slower reads)"
    return True, f"pyodbc {pyodbc.version}, {arrow}; ODBC drivers: {drivers}"


def _split_connection_string(text: str) -> list[tuple[str, str | None, bool]]:
    """Split ``key=value;...`` into (key, raw value, complete) triples.

    A value in braces may contain ``;`` and a doubled ``}}``. A segment without
    ``=`` has the value None. ``complete`` is False for a last value whose closing
    brace is missing.
    """
    parts: list[tuple[str, str | None, bool]] = []
    position = 0
    while position < len(text):
        semicolon = text.find(";", position)
        equals = text.find("=", position)
        if equals < 0 or (0 <= semicolon < equals):
            end = len(text) if semicolon < 0 else semicolon
            parts.append((text[position:end], None, True))
            position = end + 1
            continue

        key = text[position:equals]
        position = equals + 1
        search_from = position
        if text[position:].lstrip().startswith("{"):
            search_from = text.index("{", position) + 1
            while True:
                brace = text.find("}", search_from)
                if brace < 0:
                    parts.append((key, text[position:], False))
                    return parts
                if text[brace + 1:brace + 2] == "}":
                    search_from = brace + 2
                    continue
                search_from = brace + 1
                break
        semicolon = text.find(";", search_from)
        end = len(text) if semicolon < 0 else semicolon
        parts.append((key, text[position:end], True))
        position = end + 1
    return parts


def mask_connection_string(text: str) -> str:
    """Return ``text`` with the values of PWD, Password, UID, User and Username replaced by ``***``."""
    masked: list[str] = []
    for key, value, complete in _split_connection_string(text):
        if value is None:
            masked.append(key)
        elif key.strip().lower() in _SECRET_KEYS or not complete:
            # An unclosed brace swallows the rest of the string, which may hold a password.
            masked.append(f"{key}=***")
        else:
            masked.append(f"{key}={value}")
    return ";".join(masked)


# A ``key=value`` pair of ``_SECRET_KEYS`` inside a message, where the key does not follow
# a letter or digit. A value in braces may contain ``;`` and doubled ``}}``, and an unclosed
# brace runs to the end. Other values run to the next ``;`` or the end, as in a connection
# string, so a password with spaces is masked whole.
_SECRET_PAIR = re.compile(
    r"(?<![0-9A-Za-z_])(user id|username|password|user|uid|pwd)(\s*=\s*)(\{(?:[^}]|\}\})*(?:\}|$)|[^;]*)",
    re.IGNORECASE,
)


def _scrub(message: str, connection_string: str) -> str:
    """Mask the connection string and every ``PWD=``, ``Password=``, ``UID=`` or ``User=`` value in a driver message.

    Only those places are masked. Text that merely equals the password elsewhere
    in the message stays, because replacing it garbles the message and, for a short
    password, the positions of the masks would reveal it.
    """
    # The whole connection string is swapped for a placeholder first, so the pair
    # masking cannot run past its masked last value into the text that follows.
    placeholder = "\x00connection string\x00"
    if connection_string:
        message = message.replace(connection_string, placeholder)
    message = _SECRET_PAIR.sub(lambda match: f"{match.group(1)}{match.group(2)}***", message)
    return message.replace(placeholder, mask_connection_string(connection_string))


def _sqlstate(exc: Exception) -> str:
    """Return the SQLSTATE of a pyodbc error, or an empty string."""
    first = exc.args[0] if exc.args else ""
    return first if isinstance(first, str) and len(first) == 5 else ""


def _error_text(exc: Exception, connection_string: str) -> str:
    """Return a one-line driver message without ODBC call names and without secrets."""
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    message = re.sub(r"\s*\(SQL\w+\)\s*$", "", message)
    message = re.sub(r"(\s*\(-?\d+\))+\s*$", "", message)  # trailing native error codes
    message = " ".join(message.replace(";\n", " ").split())
    return _scrub(message, connection_string)


def _is_unavailable_error(exc: Exception) -> bool:
    """Tell whether a pyodbc error means the connection, not the query, failed."""
    return _sqlstate(exc).startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)


# --- connection --------------------------------------------------------------------


def _import_pyodbc() -> Any:
    """Import pyodbc or raise SourceUnavailableError with the install hint."""
    try:
        import pyodbc
    except ImportError as exc:
        raise SourceUnavailableError(f"ODBC is not available: {exc}. {INSTALL_HINT}") from None
    return pyodbc


def _connection_string(settings: Settings) -> str:
    """Return the configured connection string or raise ConfigError."""
    secret = settings.odbc_connection_string
    text = secret.get_secret_value().strip() if secret is not None else ""
    if not text:
        raise ConfigError(
            "ROUTING_ODBC_CONNECTION_STRING is not set: set it to an ODBC connection string "
            "such as Driver={ODBC Driver 18 for SQL Server};Server=...;Database=...;UID=...;PWD=..."
        )
    return text


def _checked_identifier(setting: str, value: str) -> str:
    """Return a validated table or view name, or raise ConfigError naming the setting."""
    try:
        return validate_identifier(value)
    except ValueError as exc:
        raise ConfigError(f"Invalid setting ROUTING_{setting.upper()}: {exc}") from None


def _connect(pyodbc: Any, connection_string: str, *, autocommit: bool) -> Any:
    """Open a connection or raise SourceUnavailableError with a message free of secrets."""
    try:
        return pyodbc.connect(connection_string, autocommit=autocommit, timeout=LOGIN_TIMEOUT_SECONDS)
    except pyodbc.Error as exc:
        reason = _error_text(exc, connection_string)
        logger.error("ODBC connection failed: %s", reason)
        raise SourceUnavailableError(f"ODBC connection failed: {reason}") from None


def _query_error(exc: Exception, connection_string: str, action: str) -> Exception:
    """Map a pyodbc error raised by a query to SourceUnavailableError or DataError."""
    reason = _error_text(exc, connection_string)
    logger.error("%s failed: %s", action, reason)
    if _is_unavailable_error(exc):
        return SourceUnavailableError(f"{action} failed, the connection was lost: {reason}")
    return DataError(f"{action} failed: {reason}")


def _quote_identifier(name: str, quote: str) -> str:
    """Quote one column name with the driver's identifier quote character."""
    if not quote.strip():
        return validate_identifier(name)
    closing = "]" if quote == "[" else quote
    return f"{quote}{name.replace(closing, closing * 2)}{closing}"


def _identifier_quote(connection: Any, pyodbc: Any) -> str:
    """Return the driver's identifier quote character (``"`` in SQL Server, PostgreSQL and SQLite)."""
    try:
        return str(connection.getinfo(pyodbc.SQL_IDENTIFIER_QUOTE_CHAR) or "")
    except pyodbc.Error:
        return '"'


def _describe(connection: Any, relation: str) -> list[tuple[Any, ...]]:
    """Return the cursor description of a zero-row ``SELECT *`` from a table or view."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"SELECT * FROM {relation} WHERE 1=0")
        return list(cursor.description or [])
    finally:
        cursor.close()


# --- column metadata -------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """Type, size and nullability of one table column as the driver reports them.

    ``size`` is the maximum length in characters of a bounded text column, else None.
    ``precision`` and ``scale`` describe a decimal column. ``numeric_text`` marks a
    text column that stores text reading as a number as that number: a SQLite column
    whose declared type, such as STRING, gives it numeric affinity.
    """

    name: str
    kind: ColumnKind
    type_name: str
    size: int | None = None
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True
    numeric_text: bool = False


_INTEGER_TYPES = {"int", "integer", "int2", "int4", "int8", "smallint", "bigint", "tinyint",
                  "mediumint", "serial", "bigserial", "smallserial"}
_DECIMAL_TYPES = {"decimal", "numeric", "number", "dec", "money", "smallmoney", "currency"}
# Money types keep 2 to 4 decimals depending on the DBMS, and psqlODBC reports PostgreSQL
# money with scale 0, so their reported scale is not checked.
_MONEY_TYPES = {"money", "smallmoney", "currency"}
_FLOAT_TYPES = {"real", "float", "float4", "float8", "double"}
_DATETIME_TYPES = {"datetime", "datetime2", "smalldatetime", "timestamp", "timestamptz"}
_BOUNDED_TEXT_TYPES = {"char", "varchar", "nchar", "nvarchar", "bpchar", "character",
                       "varchar2", "nvarchar2", "national"}
_UNBOUNDED_TEXT_TYPES = {"text", "ntext", "clob", "nclob", "memo", "longtext", "mediumtext",
                         "tinytext", "string", "longvarchar", "citext"}

# ODBC SQL data type codes (sql.h, sqlext.h).
_ODBC_KINDS: dict[int, ColumnKind] = {
    1: "string", 12: "string", -1: "string", -8: "string", -9: "string", -10: "string",
    2: "decimal", 3: "decimal",
    4: "integer", 5: "integer", -5: "integer", -6: "integer",
    6: "float", 7: "float", 8: "float",
    9: "date", 91: "date", 11: "datetime", 93: "datetime",
}
_ODBC_LONG_TEXT = {-1, -10}
_ODBC_BINARY = {-2, -3, -4}

# Integer ranges by type name. Other integer types, "int" and "integer" among them,
# are taken as 32-bit as in SQL Server and PostgreSQL, so SQLite's 64-bit INTEGER
# is held to 32 bits too.
_INTEGER_LIMITS = {
    "tinyint": (0, 255), "smallint": (-32768, 32767), "int2": (-32768, 32767),
    "smallserial": (1, 32767), "bigint": (-(2**63), 2**63 - 1), "int8": (-(2**63), 2**63 - 1),
    "bigserial": (1, 2**63 - 1),
}
_INT32_LIMITS = (-(2**31), 2**31 - 1)


def _first_type_word(spec: ColumnSpec) -> str:
    """Return the first word of a column's type name in lower case (``varchar`` for ``varchar(20)``)."""
    words = re.findall(r"[a-z]+\d*", spec.type_name.lower())
    return words[0] if words else ""


def _integer_limits(spec: ColumnSpec) -> tuple[int, int]:
    """Return the (minimum, maximum) value of an integer column from its type name."""
    return _INTEGER_LIMITS.get(_first_type_word(spec), _INT32_LIMITS)


def _python_kind(type_code: Any) -> ColumnKind:
    """Map a cursor description type code (a Python class in pyodbc) to a column kind."""
    if type_code is str:
        return "string"
    if type_code is bool:
        return "other"
    if type_code is int:
        return "integer"
    if type_code is float:
        return "float"
    if type_code is Decimal:
        return "decimal"
    if type_code is datetime:
        return "datetime"
    if type_code is date:
        return "date"
    return "other"


def _type_arguments(type_name: str) -> list[int]:
    """Return the numbers in a declared type such as ``decimal(10,3)`` or ``varchar(20)``."""
    match = re.search(r"\(([\d\s,]+)\)", type_name)
    return [int(n) for n in match.group(1).split(",") if n.strip()] if match else []


def _column_spec(description: tuple[Any, ...], metadata: Any | None) -> ColumnSpec:
    """Combine a cursor description entry with its ``cursor.columns()`` row, if any.

    The catalog row wins where present because drivers differ in the description:
    the SQLite ODBC driver reports every column as nullable and decimals as text,
    and psqlODBC reports PostgreSQL ``text`` as 8,190 characters long.
    """
    name, type_code, _display, internal_size, precision, scale, null_ok = description[:7]
    type_name = str(getattr(metadata, "type_name", "") or "") if metadata is not None else ""
    data_type = getattr(metadata, "data_type", None) if metadata is not None else None
    words = re.findall(r"[a-z]+\d*", type_name.lower())
    first = words[0] if words else ""
    arguments = _type_arguments(type_name)

    kind: ColumnKind
    if data_type in _ODBC_BINARY:
        kind = "other"
    elif first in _INTEGER_TYPES:
        kind = "integer"
    elif first in _DECIMAL_TYPES:
        kind = "decimal"
    elif first in _FLOAT_TYPES:
        kind = "float"
    elif first == "date":
        kind = "date"
    elif first in _DATETIME_TYPES:
        kind = "datetime"
    elif first in _BOUNDED_TEXT_TYPES or first in _UNBOUNDED_TEXT_TYPES:
        kind = "string"
    elif isinstance(data_type, int) and data_type in _ODBC_KINDS:
        kind = _ODBC_KINDS[data_type]
    else:
        kind = _python_kind(type_code)

    column_size = getattr(metadata, "column_size", None) if metadata is not None else None
    decimal_digits = getattr(metadata, "decimal_digits", None) if metadata is not None else None
    nullable_code = getattr(metadata, "nullable", None) if metadata is not None else None

    size = None
    if kind == "string":
        unbounded = first in _UNBOUNDED_TEXT_TYPES or data_type in _ODBC_LONG_TEXT
        # NOTE: psqlODBC reports unbounded PostgreSQL varchar as its MaxVarcharSize
        # (255 by default), so such columns are checked against that length.
        candidates = [arguments[0]] if arguments else [column_size, internal_size]
        declared = next((int(c) for c in candidates if isinstance(c, int) and c > 0), None)
        if not unbounded and declared is not None and declared < 2**30:
            size = declared

    column_precision = column_scale = None
    if kind == "decimal":
        if arguments:
            column_precision = arguments[0]
            column_scale = arguments[1] if len(arguments) > 1 else 0
        elif metadata is not None and isinstance(column_size, int) and column_size > 0:
            column_precision, column_scale = column_size, int(decimal_digits or 0)
        elif isinstance(precision, int) and precision > 0:
            column_precision, column_scale = precision, int(scale or 0)

    not_null = nullable_code == 0 or null_ok is False
    return ColumnSpec(
        name=str(name),
        kind=kind,
        type_name=type_name or getattr(type_code, "__name__", str(type_code)),
        size=size,
        precision=column_precision,
        scale=column_scale,
        nullable=not not_null,
    )


def _split_relation(relation: str) -> tuple[str | None, str | None, str]:
    """Split ``[catalog.][schema.]name`` into its parts without brackets or quotes."""
    parts = [p.strip('[]"') for p in relation.split(".")]
    while len(parts) < 3:
        parts.insert(0, "")
    catalog, owner, name = parts[-3], parts[-2], parts[-1]
    return catalog or None, owner or None, name


def _catalog_rows(connection: Any, pyodbc: Any, relation: str, names: Sequence[str]) -> dict[str, Any]:
    """Return ``cursor.columns()`` rows of a table or view by column name in lower case.

    Catalog lookups are case-sensitive in some drivers (PostgreSQL folds unquoted
    names to lower case), so the name is tried as written, in lower and in upper
    case. Of several tables with that name the one whose columns match ``names``
    is taken. Returns an empty dict when the driver finds nothing.
    """
    catalog, owner, name = _split_relation(relation)
    expected = {n.lower() for n in names}
    variants = dict.fromkeys([(owner, name), (owner and owner.lower(), name.lower()),
                              (owner and owner.upper(), name.upper())])
    for variant_owner, variant_name in variants:
        cursor = connection.cursor()
        try:
            rows = list(cursor.columns(table=variant_name, schema=variant_owner, catalog=catalog))
        except pyodbc.Error as exc:
            logger.warning("ODBC catalog lookup of %s failed: %s", relation, _error_text(exc, ""))
            rows = []
        finally:
            cursor.close()
        if not rows:
            continue
        groups: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
        for row in rows:
            key = (row.table_cat, row.table_schem, row.table_name)
            groups.setdefault(key, {})[str(row.column_name).lower()] = row
        for group in groups.values():
            if set(group) == expected:
                return group
        return next(iter(groups.values()))
    return {}


def _table_columns(
    connection: Any, pyodbc: Any, relation: str
) -> tuple[list[tuple[Any, ...]], list[ColumnSpec]]:
    """Return the cursor description of a table or view and a ColumnSpec per column."""
    description = _describe(connection, relation)
    names = [str(d[0]) for d in description]
    catalog = _catalog_rows(connection, pyodbc, relation, names)
    if not catalog:
        logger.warning(
            "ODBC catalog has no columns for %s; using the cursor description only", relation
        )
    specs = [_column_spec(d, catalog.get(str(d[0]).lower())) for d in description]
    if _dbms_name(connection, pyodbc).lower() == "sqlite":
        specs = [_with_sqlite_affinity(spec, catalog.get(spec.name.lower())) for spec in specs]
    return description, specs


def _dbms_name(connection: Any, pyodbc: Any) -> str:
    """Return the DBMS name the driver reports (``SQLite``, ``PostgreSQL``, ``Microsoft SQL Server``), or ""."""
    try:
        return str(connection.getinfo(pyodbc.SQL_DBMS_NAME) or "")
    except pyodbc.Error:
        return ""


def _sqlite_affinity(declared_type: str) -> str:
    """Return the affinity SQLite gives a column declared with ``declared_type``.

    SQLite tests the upper-case type name in this order (section 3.1 of
    https://www.sqlite.org/datatype3.html):

    1. contains INT: integer
    2. contains CHAR, CLOB or TEXT: text
    3. contains BLOB, or no type: blob
    4. contains REAL, FLOA or DOUB: real
    5. anything else, STRING and MEMO included: numeric
    """
    upper = declared_type.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in upper or not upper.strip():
        return "blob"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def _with_sqlite_affinity(spec: ColumnSpec, metadata: Any | None) -> ColumnSpec:
    """Mark a SQLite text column whose declared type has integer, real or numeric affinity.

    Such a column stores text that reads as a number as that number, so ``000123``
    becomes 123 although the driver reports the column as text.
    """
    declared = str(getattr(metadata, "type_name", "") or "") if metadata is not None else ""
    if spec.kind != "string" or _sqlite_affinity(declared) in ("text", "blob"):
        return spec
    return replace(spec, numeric_text=True)


# --- reading -----------------------------------------------------------------------


def _iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Yield consecutive slices of at most ``size`` items."""
    for offset in range(0, len(items), size):
        yield items[offset:offset + size]


def _accepted_columns(view_key: str) -> dict[str, str]:
    """Map upper-case accepted names of a view to the header given to the raw frame.

    Contract columns keep their contract spelling. ERP table spellings such as
    INSIDE_FLG keep theirs too, and validation maps them.
    """
    contract = schema.VIEW_COLUMNS[view_key]
    accepted = {c.upper(): c for c in contract}
    for alias, target in schema.COLUMN_ALIASES.items():
        if target in contract and alias.upper() not in accepted:
            accepted[alias.upper()] = alias
    return accepted


def _select_view_columns(description: list[tuple[Any, ...]], view_key: str) -> list[tuple[str, str]]:
    """Return (name in the view, raw frame header) for each accepted column the view has.

    When a view has a contract column and also an alias of it, only the contract
    column is read, so no header is given twice.
    """
    accepted = _accepted_columns(view_key)
    present = {str(d[0]).upper(): str(d[0]) for d in description}
    selected: list[tuple[str, str]] = []
    targets: set[str] = set()
    for upper, header in accepted.items():
        if upper not in present:
            continue
        target = schema.COLUMN_ALIASES.get(header, header)
        if target in targets:
            continue
        if header != target and target.upper() in present:
            continue
        targets.add(target)
        selected.append((present[upper], header))
    return selected


_DESCRIPTION_DTYPES: dict[Any, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    Decimal: pl.Float64(),
    bool: pl.Boolean(),
    date: pl.Date(),
    datetime: pl.Datetime("us"),
}


@dataclass(frozen=True)
class _ViewQuery:
    """The SELECT statements that read one view, and how to name and type the result."""

    view: str
    selected: list[tuple[str, str]]  # (name in the view, raw frame header)
    specs: dict[str, ColumnSpec]  # by raw frame header
    overrides: dict[str, pl.DataType]  # pyodbc result dtypes by name in the view
    statements: list[tuple[str, list[Any]]]  # (SQL, parameters); one per group of item codes


def _plan_view_query(
    connection: Any,
    pyodbc: Any,
    connection_string: str,
    view: str,
    view_key: str,
    *,
    item_codes: Sequence[str] | None,
    reported_until: date | None,
) -> _ViewQuery:
    """Discover the view's columns and build parameterised SELECT statements for the accepted ones."""
    try:
        description, column_specs = _table_columns(connection, pyodbc, view)
        quote = _identifier_quote(connection, pyodbc)
    except pyodbc.Error as exc:
        raise _query_error(exc, connection_string, f"Reading the columns of view {view}") from None

    selected = _select_view_columns(description, view_key)
    if not selected:
        expected = ", ".join(schema.VIEW_COLUMNS[view_key][:6])
        raise DataError(f"View {view} has none of the expected columns ({expected}, ...)")

    type_codes = {str(d[0]): d[1] for d in description}
    spec_of = {spec.name: spec for spec in column_specs}
    source_of = {header: source for source, header in selected}
    overrides = {
        source: _DESCRIPTION_DTYPES[type_codes[source]]
        for source, _ in selected
        if type_codes[source] in _DESCRIPTION_DTYPES
    }
    query = f"SELECT {', '.join(_quote_identifier(s, quote) for s, _ in selected)} FROM {view}"

    conditions: list[str] = []
    parameters: list[Any] = []
    if reported_until is not None and "REPORT_DT" in source_of:
        conditions.append(f"{_quote_identifier(source_of['REPORT_DT'], quote)} <= ?")
        parameters.append(reported_until)

    code_chunks: list[list[str]] = [[]]
    if item_codes is not None:
        if "ITEM_CD" not in source_of:
            raise DataError(f"View {view} has no ITEM_CD column to filter on")
        codes = list(dict.fromkeys(str(c) for c in item_codes))
        code_chunks = list(_iter_chunks(codes, MAX_PARAMETERS_PER_QUERY))

    statements = []
    for chunk in code_chunks:
        chunk_conditions = list(conditions)
        if chunk:
            marks = ", ".join("?" * len(chunk))
            chunk_conditions.append(f"{_quote_identifier(source_of['ITEM_CD'], quote)} IN ({marks})")
        where = " WHERE " + " AND ".join(chunk_conditions) if chunk_conditions else ""
        statements.append((query + where, parameters + chunk))

    return _ViewQuery(
        view=view,
        selected=selected,
        specs={header: spec_of[source] for source, header in selected},
        overrides=overrides,
        statements=statements,
    )


def _fetch_pyodbc(connection: Any, plan: _ViewQuery, batch_size: int) -> pl.DataFrame:
    """Run the statements with polars.read_database over the pyodbc connection."""
    frames: list[pl.DataFrame] = []
    for statement, parameters in plan.statements:
        frames.extend(
            pl.read_database(
                statement,
                connection,
                iter_batches=True,
                batch_size=batch_size,
                schema_overrides=plan.overrides,
                execute_options={"parameters": parameters} if parameters else None,
            )
        )
    if not frames:
        return pl.DataFrame(schema={s: plan.overrides.get(s, pl.String()) for s, _ in plan.selected})
    return pl.concat(frames, how="vertical_relaxed")


def _arrow_odbc_module() -> Any | None:
    """Return the arrow_odbc module, or None where it or unixODBC is missing."""
    try:
        import arrow_odbc
    except (ImportError, OSError):
        return None
    return arrow_odbc


def _floats_as_float64(arrow_schema: Any) -> Any:
    """Return ``arrow_schema`` with every floating-point column read as float64.

    psqlODBC reports PostgreSQL ``double precision`` as SQL_FLOAT with a column
    size of 17 (decimal digits), which arrow-odbc takes for a 4-byte float. Every
    value would then keep only about 7 significant digits (35.6 read as 35.599998).
    With float64 buffers the driver converts to double, as it does for pyodbc.
    """
    import pyarrow as pa

    return pa.schema(
        [column.with_type(pa.float64()) if pa.types.is_floating(column.type) else column for column in arrow_schema],
        metadata=arrow_schema.metadata,
    )


def _fetch_arrow(arrow_odbc: Any, connection_string: str, plan: _ViewQuery, batch_size: int) -> pl.DataFrame:
    """Run the statements with arrow-odbc, which fills Arrow buffers without Python objects per value.

    arrow-odbc binds parameters as text, so dates are sent as ``YYYY-MM-DD``. Text
    longer than ``ARROW_MAX_TEXT_SIZE`` in a column of unknown or larger size
    raises arrow_odbc.Error rather than being truncated. Floating-point columns
    are read as float64 (see ``_floats_as_float64``).
    """
    frames: list[pl.DataFrame] = []
    schema_frame: pl.DataFrame | None = None
    for statement, parameters in plan.statements:
        reader = arrow_odbc.read_arrow_batches_from_odbc(
            statement,
            connection_string=connection_string,
            batch_size=batch_size,
            parameters=[v.isoformat() if isinstance(v, date) else str(v) for v in parameters] or None,
            max_text_size=ARROW_MAX_TEXT_SIZE,
            login_timeout_sec=LOGIN_TIMEOUT_SECONDS,
            payload_text_encoding=arrow_odbc.TextEncoding.UTF16,
            map_schema=_floats_as_float64,
        )
        frames.extend(pl.from_arrow(batch) for batch in reader)
        if schema_frame is None:
            schema_frame = pl.from_arrow(reader.schema.empty_table())
    if not frames:
        if schema_frame is not None:
            return schema_frame
        return pl.DataFrame(schema={s: plan.overrides.get(s, pl.String()) for s, _ in plan.selected})
    return pl.concat(frames, how="vertical_relaxed")


def _arrow_error_text(exc: Exception, connection_string: str) -> tuple[str, str]:
    """Return (SQLSTATE, one-line message without secrets) of an arrow_odbc.Error."""
    message = str(getattr(exc, "message", "") or exc)
    state_match = re.search(r"State: (\w{5})", message)
    text_match = re.search(r"Message: (.*)", message, re.DOTALL)
    state = state_match.group(1) if state_match else ""
    text = text_match.group(1) if text_match else message
    text = re.sub(r"(\s*\(-?\d+\))+\s*$", "", " ".join(text.replace(";\n", " ").split()))
    return state, _scrub(f"[{state}] {text}" if state else text, connection_string)


def _normalise_dtypes(frame: pl.DataFrame) -> pl.DataFrame:
    """Give both readers' results the same dtypes: Float64 for DECIMAL, Int64, Datetime in µs."""
    return frame.with_columns(
        pl.col(pl.Decimal).cast(pl.Float64),
        pl.col(pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32).cast(pl.Int64),
        pl.col(pl.Datetime).cast(pl.Datetime("us")),
    )


def _cast_declared_numbers(frame: pl.DataFrame, specs: dict[str, ColumnSpec]) -> pl.DataFrame:
    """Cast text columns that the database declares numeric (SQLite decimals) to Float64.

    A column is cast only when every non-empty value parses as a number. Otherwise
    it stays text and validation reports the bad values.
    """
    casts = []
    for header, spec in specs.items():
        if spec.kind not in ("integer", "decimal", "float") or frame.schema[header] != pl.String:
            continue
        parsed = pl.col(header).str.strip_chars().cast(pl.Float64, strict=False)
        unparsed = frame.select(
            (pl.col(header).is_not_null() & (pl.col(header).str.strip_chars() != "") & parsed.is_null()).sum()
        ).item()
        if unparsed == 0:
            casts.append(parsed.alias(header))
    return frame.with_columns(casts) if casts else frame


def _read_view(
    connection: Any,
    pyodbc: Any,
    arrow_odbc: Any | None,
    connection_string: str,
    plan: _ViewQuery,
    *,
    batch_size: int,
    engine: ReadEngine,
) -> pl.DataFrame:
    """Read one planned view in batches and return one raw frame with contract headers."""
    start = time.perf_counter()
    used = "pyodbc"
    frame: pl.DataFrame | None = None

    if arrow_odbc is not None and engine in ("auto", "arrow-odbc"):
        try:
            frame = _fetch_arrow(arrow_odbc, connection_string, plan, batch_size)
            used = "arrow-odbc"
        except arrow_odbc.Error as exc:
            state, reason = _arrow_error_text(exc, connection_string)
            if state.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
                logger.error("Reading view %s failed: %s", plan.view, reason)
                raise SourceUnavailableError(f"Reading view {plan.view} failed: {reason}") from None
            if engine == "arrow-odbc":
                logger.error("Reading view %s failed: %s", plan.view, reason)
                raise DataError(f"Reading view {plan.view} failed: {reason}") from None
            logger.warning("arrow-odbc could not read %s (%s); reading it with pyodbc", plan.view, reason)

    if frame is None:
        try:
            frame = _fetch_pyodbc(connection, plan, batch_size)
        except pyodbc.Error as exc:
            raise _query_error(exc, connection_string, f"Reading view {plan.view}") from None

    frame = _normalise_dtypes(frame)
    frame = frame.rename({s: h for s, h in plan.selected if s != h})
    frame = _cast_declared_numbers(frame, plan.specs)

    logger.info(
        "ODBC read %s with %s: %d rows, %d columns in %.2f s",
        plan.view, used, frame.height, frame.width, time.perf_counter() - start,
    )
    return frame


def read_views_odbc(
    settings: Settings,
    *,
    item_codes: Sequence[str] | None = None,
    reported_until: date | None = None,
    engine: ReadEngine = "auto",
) -> RawViews:
    """Read the item, routing and work-order views through ODBC into raw frames.

    Parameters
    ----------
    settings
        Uses ``odbc_connection_string``, ``item_view``, ``routing_view``,
        ``work_order_view`` and ``odbc_batch_size`` (rows fetched per round trip).
    item_codes
        Read only these items (all three views), passed as ``?`` parameters in
        groups of ``MAX_PARAMETERS_PER_QUERY``. None reads every item.
    reported_until
        Read only work orders with REPORT_DT on or before this date. None reads all.
    engine
        "arrow-odbc" reads through arrow-odbc, "pyodbc" through
        ``polars.read_database`` over pyodbc. "auto" (default) uses arrow-odbc
        where it is installed and reads a view with pyodbc when arrow-odbc rejects
        it, for example for text longer than ``ARROW_MAX_TEXT_SIZE``.

    Returns raw frames: DECIMAL columns are Float64, integers Int64, dates stay
    Date or Datetime, text stays as the driver returns it. Raises ConfigError (no
    connection string or an invalid view name), SourceUnavailableError (no pyodbc,
    driver or server) or DataError (a view is missing or has none of the contract
    columns).
    """
    if engine not in ("auto", "arrow-odbc", "pyodbc"):
        raise ValueError(f"unknown engine {engine!r}: expected auto, arrow-odbc or pyodbc")
    views = {
        schema.ITEM_VIEW: _checked_identifier("item_view", settings.item_view),
        schema.ROUTING_VIEW: _checked_identifier("routing_view", settings.routing_view),
        schema.WORK_ORDER_VIEW: _checked_identifier("work_order_view", settings.work_order_view),
    }
    connection_string = _connection_string(settings)
    pyodbc = _import_pyodbc()
    arrow_odbc = _arrow_odbc_module() if engine != "pyodbc" else None
    if engine == "arrow-odbc" and arrow_odbc is None:
        raise SourceUnavailableError(f"arrow-odbc is not installed: pip install arrow-odbc. {INSTALL_HINT}")

    start = time.perf_counter()
    logger.info("ODBC read of %s started", ", ".join(views.values()))
    connection = _connect(pyodbc, connection_string, autocommit=True)
    try:
        frames = {}
        for key, view in views.items():
            plan = _plan_view_query(
                connection, pyodbc, connection_string, view, key,
                item_codes=item_codes,
                reported_until=reported_until if key == schema.WORK_ORDER_VIEW else None,
            )
            frames[key] = _read_view(
                connection, pyodbc, arrow_odbc, connection_string, plan,
                batch_size=settings.odbc_batch_size, engine=engine,
            )
    finally:
        connection.close()
    logger.info("ODBC read finished in %.2f s", time.perf_counter() - start)

    return RawViews(
        items=frames[schema.ITEM_VIEW],
        routings=frames[schema.ROUTING_VIEW],
        work_orders=frames[schema.WORK_ORDER_VIEW],
    )


def test_connection(settings: Settings) -> dict[str, Any]:
    """Connect, count the rows of the three views and return the outcome for the data page.

    Returns a dict with ``ok``, ``connection`` (masked), ``driver``, ``driver_version``,
    ``server`` (DBMS name), ``server_version``, ``seconds``, ``row_counts``
    (view → rows, None where counting failed), ``errors`` (view → message) and
    ``error`` (why the connection failed, else None). A missing setting, driver,
    server or view sets ``ok`` to False instead of raising. Password values are
    removed from every message.
    """
    start = time.perf_counter()
    result: dict[str, Any] = {
        "ok": False, "connection": "", "driver": None, "driver_version": None, "server": None,
        "server_version": None, "seconds": 0.0, "row_counts": {}, "errors": {}, "error": None,
    }
    try:
        connection_string = _connection_string(settings)
        result["connection"] = mask_connection_string(connection_string)
        pyodbc = _import_pyodbc()
        connection = _connect(pyodbc, connection_string, autocommit=True)
    except (ConfigError, SourceUnavailableError) as exc:
        result["error"] = str(exc)
        result["seconds"] = round(time.perf_counter() - start, 3)
        return result

    try:
        for key, code in (("driver", "SQL_DRIVER_NAME"), ("driver_version", "SQL_DRIVER_VER"),
                          ("server", "SQL_DBMS_NAME"), ("server_version", "SQL_DBMS_VER")):
            try:
                result[key] = connection.getinfo(getattr(pyodbc, code))
            except pyodbc.Error as exc:
                logger.warning("ODBC test: the driver does not report %s: %s", code, _error_text(exc, ""))
        for setting in ("item_view", "routing_view", "work_order_view"):
            view = getattr(settings, setting)
            try:
                relation = _checked_identifier(setting, view)
                cursor = connection.cursor()
                try:
                    result["row_counts"][view] = int(cursor.execute(f"SELECT COUNT(*) FROM {relation}").fetchval())
                finally:
                    cursor.close()
            except ConfigError as exc:
                result["row_counts"][view] = None
                result["errors"][view] = str(exc)
            except pyodbc.Error as exc:
                result["row_counts"][view] = None
                result["errors"][view] = _error_text(exc, connection_string)
                logger.warning("ODBC test: counting %s failed: %s", view, result["errors"][view])
    finally:
        connection.close()

    result["ok"] = not result["errors"]
    result["seconds"] = round(time.perf_counter() - start, 3)
    logger.info(
        "ODBC test: driver %s, server %s %s, ok=%s in %.2f s",
        result["driver"], result["server"], result["server_version"], result["ok"], result["seconds"],
    )
    return result


# The name starts with "test"; keep pytest from collecting it where it is imported.
test_connection.__test__ = False  # type: ignore[attr-defined]


# --- row checks before writing ---------------------------------------------------


_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_NUMERIC_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
                   pl.Float32, pl.Float64, pl.Decimal)
_INTEGER_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _problem(rule: str, reason: pl.Expr, display_value: pl.Expr | None = None) -> pl.Expr:
    """Return a struct expression describing one rejected value.

    ``display_value`` replaces the value in the report, for example with ``0.04 → 0.0``
    where the report must show what the value would become.
    """
    if display_value is None:
        display_value = pl.lit(None, pl.String)
    return pl.struct(rule=pl.lit(rule), reason=reason, display_value=display_value)


# The dtype of ``_problem``, for a column without any problem.
_PROBLEM_DTYPE = pl.Struct({"rule": pl.String, "reason": pl.String, "display_value": pl.String})


def _short_text(expr: pl.Expr) -> pl.Expr:
    """Return a value as short text for a message."""
    return expr.cast(pl.String).str.slice(0, 40)


def _python_values(frame: pl.DataFrame) -> pl.DataFrame:
    """Rebuild Object columns (numpy scalars, Decimals) as typed Polars columns."""
    objects = [name for name, dtype in frame.schema.items() if dtype == pl.Object]
    if not objects:
        return frame
    return frame.with_columns(pl.Series(name, frame[name].to_list(), strict=False) for name in objects)


def _text_check(
    column: str, dtype: pl.DataType, spec: ColumnSpec, is_code: bool = False
) -> tuple[pl.Expr, pl.Expr | None]:
    """Return (text value, problem) for a text column. Empty or blank text becomes NULL.

    In a ``numeric_text`` column, text that the database would store as a different
    number is rejected, as code_changed in a code column (``is_code``) and as
    text_changed in any other column.
    """
    source = pl.col(column)
    if dtype == pl.Date:
        text = source.dt.to_string("%Y-%m-%d")
    elif dtype == pl.Datetime:
        text = source.dt.to_string("%Y-%m-%d %H:%M:%S")
    else:
        text = source.cast(pl.String)
    value = pl.when(text.str.strip_chars() == "").then(None).otherwise(text)

    problems = []
    if spec.size is not None:
        too_long = value.str.len_chars() > spec.size
        problems.append(pl.when(too_long).then(_problem(
            "too_long",
            pl.format(f"text of {{}} characters is longer than the column's {spec.size}", value.str.len_chars()),
        )))
    if spec.numeric_text:
        problems.append(_numeric_text_problem(value, spec, is_code))
    return value, (pl.coalesce(problems) if problems else None)


# Text that a number column stores unchanged: a whole number without leading zeros,
# plus sign, spaces, decimals or exponent.
_CANONICAL_WHOLE_NUMBER = r"^(?:0|-?[1-9][0-9]*)$"

# Text that SQLite converts to a number in a column with numeric affinity: a decimal
# literal with optional sign, decimal point and exponent, and optional white space
# around it. Hexadecimal (0x10), inf and nan stay text.
_SQLITE_NUMBER_TEXT = r"^[ \t\n\r\x0b\x0c]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\x0b\x0c]*$"


def _number_as_stored(number: pl.Expr) -> pl.Expr:
    """Return a Float64 value as the text a number column gives back: ``123`` for a whole number, else ``1.5``."""
    whole = pl.when(number == number.floor()).then(number.cast(pl.Int64, strict=False).cast(pl.String))
    return pl.coalesce(whole, number.cast(pl.String))


def _numeric_text_problem(value: pl.Expr, spec: ColumnSpec, is_code: bool) -> pl.Expr:
    """Return the problem of text that a ``numeric_text`` column would store as a different number.

    A plain whole number within the 64-bit range, such as ``123``, reads back unchanged.
    Other number text does not: ``000123`` and ``12.0`` become 123 and 12, ``1.50`` becomes 1.5.
    """
    reads_as_number = value.str.contains(_SQLITE_NUMBER_TEXT)
    unchanged = value.str.contains(_CANONICAL_WHOLE_NUMBER) & value.cast(pl.Int64, strict=False).is_not_null()
    stored = _number_as_stored(value.str.strip_chars().cast(pl.Float64, strict=False))
    cause = (
        f"because SQLite gives a column declared {spec.type_name} numeric affinity; "
        "declare the staging column as TEXT or VARCHAR"
    )
    if is_code:
        rule, template = "code_changed", f"code '{{}}' would be stored as the number {{}}, {cause}"
    else:
        rule, template = "text_changed", f"'{{}}' would be stored as the number {{}}, {cause}"
    reason = pl.format(template, _short_text(value), _short_text(stored))
    return pl.when(reads_as_number & ~unchanged).then(_problem(rule, reason))


# Relative difference below which a Float64 and its rounded form count as equal: about
# four units in the last place, the error that rounding in binary floating point adds.
_FLOAT_NOISE = 1e-15


def _number_check(
    column: str, dtype: pl.DataType, spec: ColumnSpec, is_code: bool = False
) -> tuple[pl.Expr, pl.Expr | None]:
    """Return (numeric value, problem) for an integer, decimal or float column.

    ``is_code`` marks a code column (``ERP_CODE_COLUMNS``): its text must read the
    same after it is stored as a number, so ``000123`` or ``01`` is rejected.
    """
    source = pl.col(column)
    code_changed = pl.lit(False)
    if isinstance(dtype, _NUMERIC_DTYPES) or dtype == pl.Boolean:
        number = source.cast(pl.Float64)
        not_numeric = pl.lit(False)
    elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        text = source.cast(pl.String).str.strip_chars()
        number = pl.when(text == "").then(None).otherwise(text).cast(pl.Float64, strict=False)
        not_numeric = source.is_not_null() & (text != "") & number.is_null()
    elif dtype == pl.Null:
        number = pl.lit(None, dtype=pl.Float64)
        not_numeric = pl.lit(False)
    else:
        number = pl.lit(None, dtype=pl.Float64)
        not_numeric = source.is_not_null()
    number = number.fill_nan(None)

    not_finite = number.is_infinite()
    stored = _number_as_stored(number)
    if is_code and (dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)):
        # Text becomes a Float64 first, which represents whole numbers exactly only up to
        # 2**53, so longer codes change too.
        as_text = source.cast(pl.String)
        code_changed = number.is_not_null() & (~as_text.str.contains(_CANONICAL_WHOLE_NUMBER) | (stored != as_text))
    changed_reason = pl.format(
        "code '{}' would be stored as the number {} and lose its form (leading zeros, signs, spaces or decimals); "
        "make the staging column a text column",
        _short_text(source), _short_text(stored),
    )
    reasons = pl.when(not_numeric).then(
        _problem("not_numeric", pl.format("'{}' is not a number", _short_text(source)))
    ).when(not_finite).then(
        _problem("not_numeric", pl.format("{} is not a finite number", _short_text(source)))
    ).when(code_changed).then(_problem("code_changed", changed_reason))

    if spec.kind == "integer":
        low, high = _integer_limits(spec)
        fractional = number != number.floor()
        out_of_range = (number < low) | (number > high)
        range_reason = pl.format(f"{{}} is outside the column's range {low}..{high}", _short_text(number))
        reasons = reasons.when(fractional).then(
            _problem("not_integer", pl.format("{} is not a whole number", _short_text(number)))
        ).when(out_of_range).then(_problem("out_of_range", range_reason))
        exact = (source if isinstance(dtype, _INTEGER_DTYPES) else number).cast(pl.Int64, strict=False)
        value = pl.when(not_numeric | not_finite | fractional | out_of_range).then(None).otherwise(exact)
    elif spec.kind == "decimal" and spec.precision is not None:
        scale = spec.scale or 0
        declared = f"decimal({spec.precision},{scale})"
        limit = 10 ** (spec.precision - scale)
        # PostgreSQL rounds NUMERIC half away from zero: 1.25 into numeric(10,1) is stored as 1.3.
        rounded = number.round(scale, mode="half_away_from_zero")
        too_large = rounded.abs() >= limit
        size_reason = pl.format(f"{{}} does not fit {declared} (limit below {limit})", _short_text(number))
        reasons = reasons.when(too_large).then(_problem("out_of_range", size_reason))
        if _first_type_word(spec) not in _MONEY_TYPES:
            # NOTE: SQLite stores the value unrounded whatever the declared scale, but
            # the check follows the declared type, as the ERP's own table would.
            decimals_lost = (number - rounded).abs() > number.abs() * _FLOAT_NOISE
            decimals_reason = pl.format(
                f"{{}} has more decimals than {declared} keeps and would be stored as {{}}; "
                "give the staging column a larger scale",
                _short_text(number), _short_text(rounded),
            )
            display_value = pl.format("{} → {}", _short_text(number), _short_text(rounded))
            reasons = reasons.when(decimals_lost).then(_problem("too_many_decimals", decimals_reason, display_value))
        value = number
    else:
        # NOTE: a 4-byte real column (PostgreSQL real, SQL Server real) keeps about 7
        # significant digits, and a value that loses digits there is not rejected.
        value = number
    return value, reasons.otherwise(None)


def _date_check(column: str, dtype: pl.DataType, spec: ColumnSpec) -> tuple[pl.Expr, pl.Expr | None]:
    """Return (date value, problem) for a date or datetime column. Values are sent as dates."""
    source = pl.col(column)
    if dtype == pl.Date:
        return source, None
    if dtype == pl.Datetime:
        return source.dt.date(), None
    if dtype == pl.Null:
        return pl.lit(None, dtype=pl.Date), None
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        text = source.cast(pl.String).str.strip_chars()
        parsed = pl.coalesce(
            [text.str.strptime(pl.Datetime, f, strict=False).dt.date() for f in _DATE_FORMATS if "%H" in f]
            + [text.str.strptime(pl.Date, f, strict=False) for f in _DATE_FORMATS if "%H" not in f]
        )
        value = pl.when(text == "").then(None).otherwise(parsed)
        bad = source.is_not_null() & (text != "") & value.is_null()
    else:
        value = pl.lit(None, dtype=pl.Date)
        bad = source.is_not_null()
    problem = pl.when(bad).then(
        _problem("not_date", pl.format("'{}' is not a date (YYYY-MM-DD)", _short_text(source)))
    )
    return value, problem


def _column_check(column: str, dtype: pl.DataType, spec: ColumnSpec) -> tuple[pl.Expr, pl.Expr]:
    """Return (value to send, problem or NULL) for one frame column written into ``spec``."""
    is_code = spec.name.upper() in ERP_CODE_COLUMNS
    if spec.kind == "string":
        value, problem = _text_check(column, dtype, spec, is_code=is_code)
    elif spec.kind in ("integer", "decimal", "float"):
        value, problem = _number_check(column, dtype, spec, is_code=is_code)
    elif spec.kind in ("date", "datetime"):
        value, problem = _date_check(column, dtype, spec)
    else:
        value, problem = pl.col(column), None

    checks = [problem] if problem is not None else []
    if not spec.nullable:
        checks.append(pl.when(value.is_null()).then(
            _problem("not_null", pl.lit("empty, but the column does not allow NULL"))
        ))
    no_problem = pl.lit(None, dtype=_PROBLEM_DTYPE)
    combined = pl.coalesce(checks) if checks else no_problem
    return value.alias(spec.name), combined.alias(spec.name)


def check_rows(rows: pl.DataFrame, columns: Sequence[ColumnSpec]) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Check every row against the target columns and convert the values to send.

    Only columns present in both ``rows`` and ``columns`` (names compared without
    regard to case) are checked and returned, in table order, named as in the table.
    Returns (values, problems). ``values`` holds str, float, int and date values;
    ``problems`` has one dict per rejected value with ``row`` (0-based position in
    ``rows``), ``ITEM_CD``, ``column``, ``rule`` (too_long, not_null, not_numeric,
    code_changed, text_changed, not_integer, out_of_range, too_many_decimals,
    not_date), ``reason`` and ``value``. ``value`` is the value as given, except for
    too_many_decimals, where it shows the value and what it would become (``0.04 → 0.0``).
    A code column (``ERP_CODE_COLUMNS``) written into a number column, or into a
    ``numeric_text`` column, is rejected as code_changed unless its text is a plain
    whole number such as ``123``. Other text in a ``numeric_text`` column is rejected
    as text_changed on the same terms. A number with more decimals than a decimal
    column's scale is rejected as too_many_decimals, because the database would round it.
    """
    rows = _python_values(rows)
    by_lower = {name.lower(): name for name in rows.columns}
    pairs = [(by_lower[spec.name.lower()], spec) for spec in columns if spec.name.lower() in by_lower]

    values: list[pl.Expr] = []
    problems: list[pl.Expr] = []
    for column, spec in pairs:
        value, problem = _column_check(column, rows.schema[column], spec)
        values.append(value)
        problems.append(problem)

    checked = rows.select(values) if values else pl.DataFrame()
    item_column = by_lower.get("item_cd")
    item = pl.col(item_column).cast(pl.String) if item_column else pl.lit(None, dtype=pl.String)
    originals = {spec.name: _short_text(pl.col(column)) for column, spec in pairs}
    if not problems:
        return checked, []

    # Internal names start with "\x00" so they cannot clash with table columns.
    row_key, item_key = "\x00row", "\x00item"
    found = (
        rows.with_row_index(row_key)
        .select(row_key, item.alias(item_key), *problems)
        .unpivot(index=[row_key, item_key], variable_name="column", value_name="problem")
        .filter(pl.col("problem").is_not_null())
        .unnest("problem")
    )
    if found.is_empty():
        return checked, []

    displayed_values = (
        rows.with_row_index(row_key)
        .select(row_key, *[expr.alias(name) for name, expr in originals.items()])
        .unpivot(index=row_key, variable_name="column", value_name="value")
    )
    order = {spec.name: position for position, (_, spec) in enumerate(pairs)}
    report = (
        found.join(displayed_values, on=[row_key, "column"], how="left")
        .with_columns(pl.col("column").replace_strict(order, return_dtype=pl.Int64).alias("\x00position"))
        .sort(row_key, "\x00position")
        .select(
            pl.col(row_key).alias("row"), pl.col(item_key).alias("ITEM_CD"), "column", "rule", "reason",
            pl.coalesce("display_value", "value").alias("value"),
        )
    )
    return checked, report.to_dicts()


# --- writing -----------------------------------------------------------------------


@dataclass(frozen=True)
class WriteResult:
    """Outcome of ``write_staging``: rows committed (0 in a dry run) and rows checked."""

    rows_written: int
    table: str
    seconds: float
    dry_run: bool
    rows_checked: int = 0
    columns: tuple[str, ...] = field(default_factory=tuple)


def _rollback(connection: Any, pyodbc: Any) -> None:
    """Roll back and log a failure without raising it, because the connection is closed next anyway."""
    try:
        connection.rollback()
    except pyodbc.Error as exc:
        logger.error("ODBC rollback failed: %s", _error_text(exc, ""))


def _find_failing_row(
    connection: Any, pyodbc: Any, statement: str, parameters: list[tuple[Any, ...]]
) -> tuple[int, Exception] | None:
    """Replay the rows one at a time in a transaction that is always rolled back.

    Returns (position, error) of the first row the database rejects, or None when
    every row goes through on replay (the first failure was not caused by a row).
    """
    cursor = connection.cursor()
    try:
        for position, values in enumerate(parameters):
            try:
                cursor.execute(statement, values)
            except pyodbc.Error as exc:
                return None if _is_unavailable_error(exc) else (position, exc)
        return None
    except pyodbc.Error:
        return None
    finally:
        cursor.close()
        _rollback(connection, pyodbc)


def _insert_error(
    exc: Exception,
    connection: Any,
    pyodbc: Any,
    connection_string: str,
    table: str,
    statement: str,
    parameters: list[tuple[Any, ...]],
    rows: pl.DataFrame,
) -> ExportError:
    """Return the ExportError for a failed (and rolled back) INSERT, naming the rejected row if it can."""
    reason = _error_text(exc, connection_string)
    logger.error("ODBC export to %s failed and was rolled back: %s", table, reason)
    if _is_unavailable_error(exc):
        return ExportError(f"Writing to {table} failed, nothing was written: {reason}")

    failing = _find_failing_row(connection, pyodbc, statement, parameters)
    if failing is None:
        return ExportError(f"Writing to {table} failed, nothing was written: {reason}")

    position, row_error = failing
    row_reason = _error_text(row_error, connection_string)
    item_column = next((c for c in rows.columns if c.lower() == "item_cd"), None)
    item = rows[position, item_column] if item_column else None
    logger.error("ODBC export to %s: the database rejected row %d (ITEM_CD %s)", table, position, item)
    return ExportError(
        f"Writing to {table} failed at row {position} ({item}), nothing was written: {row_reason}",
        rows=[{"row": position, "ITEM_CD": item, "column": None, "rule": "database",
               "reason": row_reason, "value": None}],
    )


def _read_back_text(
    connection: Any, table: str, quote: str, item_column: str, text_columns: list[str], items: list[Any]
) -> pl.DataFrame:
    """Return the text columns of every table row of ``items``, read in the open transaction.

    Values are Polars strings, read in groups of ``MAX_PARAMETERS_PER_QUERY`` item codes.
    """
    selected = ", ".join(_quote_identifier(c, quote) for c in text_columns)
    frames = []
    for chunk in _iter_chunks(items, MAX_PARAMETERS_PER_QUERY):
        statement = (
            f"SELECT {selected} FROM {table} "
            f"WHERE {_quote_identifier(item_column, quote)} IN ({', '.join('?' * len(chunk))})"
        )
        frames.append(pl.read_database(
            statement, connection, execute_options={"parameters": chunk},
            schema_overrides={c: pl.String for c in text_columns},
        ))
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema={c: pl.String for c in text_columns})


def _changed_on_write(
    connection: Any, table: str, quote: str, values: pl.DataFrame, columns: Sequence[ColumnSpec]
) -> list[dict[str, Any]]:
    """Read back the text values just inserted, before COMMIT, and return those the database changed.

    The checks before writing see only the declared types. A database can still
    change text without an error, for example SQLite in a column whose type gives it
    numeric affinity, a varchar column whose code page lacks Hangul, or a trigger.
    So every text value sent must be among the values read back for its ITEM_CD, as
    often as it was sent. Trailing spaces are ignored, because char(n)
    columns pad. Returns one problem per changed value, with rule changed_on_write,
    in the form of ``check_rows``. Returns an empty list when ``values`` has no
    ITEM_CD or no text column. Raises pyodbc.Error when the SELECT fails.
    """
    kinds = {spec.name: spec.kind for spec in columns}
    text_columns = [c for c in values.columns if kinds.get(c) == "string"]
    item_column = next((c for c in values.columns if c.lower() == "item_cd"), None)
    if item_column is None or not text_columns or values.height == 0:
        return []

    items = values.get_column(item_column).drop_nulls().unique(maintain_order=True).to_list()
    read = _read_back_text(connection, table, quote, item_column, text_columns, items)

    # Internal names start with "\x00" so they cannot clash with table columns.
    row_key, item_key = "\x00row", "\x00item"

    def text_values(frame: pl.DataFrame, index: list[str]) -> pl.DataFrame:
        return (
            frame.select(*index, *text_columns)
            .unpivot(index=index, on=text_columns, variable_name="column", value_name="value")
            .filter(pl.col("value").is_not_null())
            .with_columns(pl.col("value").str.strip_chars_end(" ").alias("\x00key"))
        )

    sent = text_values(
        values.with_row_index(row_key).with_columns(pl.col(item_column).cast(pl.String).alias(item_key)),
        [row_key, item_key],
    ).filter(pl.col(item_key).is_not_null())
    sent_counts = sent.group_by("column", "\x00key").len("\x00sent")
    read_counts = text_values(read, []).group_by("column", "\x00key").len("\x00read")
    changed_keys = (
        sent_counts.join(read_counts, on=["column", "\x00key"], how="left")
        .filter(pl.col("\x00read").fill_null(0) < pl.col("\x00sent"))
        .select("column", "\x00key")
    )
    order = {name: position for position, name in enumerate(text_columns)}
    reason = pl.format(
        "'{}' reads back differently after the INSERT, so the database would store another value "
        "(check the staging column's type, length and code page)",
        _short_text(pl.col("value")),
    )
    report = (
        sent.join(changed_keys, on=["column", "\x00key"], how="semi")
        .with_columns(pl.col("column").replace_strict(order, return_dtype=pl.Int64).alias("\x00position"))
        .sort(row_key, "\x00position")
        .select(
            pl.col(row_key).cast(pl.Int64).alias("row"), pl.col(item_key).alias("ITEM_CD"), "column",
            pl.lit("changed_on_write").alias("rule"), reason.alias("reason"), _short_text(pl.col("value")).alias("value"),
        )
    )
    return report.to_dicts()


def missing_export_columns(row_columns: Sequence[str], columns: Sequence[ColumnSpec]) -> list[str]:
    """Return the columns of ``row_columns`` that are in ``ERP_EXPORT_COLUMNS`` but not in the table.

    Names are compared without regard to case and returned as in ``row_columns``.
    """
    table_names = {spec.name.lower() for spec in columns}
    export_names = {name.lower() for name in ERP_EXPORT_COLUMNS}
    return [c for c in row_columns if c.lower() in export_names and c.lower() not in table_names]


def _missing_columns_error(table: str, missing: list[str]) -> ExportError:
    """Return the ExportError, naming each column, for a staging table without some export columns."""
    logger.error("ODBC export to %s rejected: the table has no column %s", table, ", ".join(missing))
    return ExportError(
        f"Staging table {table} has no column {', '.join(missing)}, so those values would be lost; "
        "nothing was written. Add the columns to the table or set staging_table to the ERP's routing staging table.",
        rows=[{"row": None, "ITEM_CD": None, "column": c, "rule": "missing_column",
               "reason": f"staging table {table} has no column {c}", "value": None} for c in missing],
    )


def _summary(problems: list[dict[str, Any]], limit: int = 5) -> str:
    """Return the first problems as one line for an error message."""
    first = [f"row {p['row']} ({p['ITEM_CD']}) {p['column']}: {p['reason']}" for p in problems[:limit]]
    more = f"; {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(first) + more


def _verify_before_commit(
    connection: Any, pyodbc: Any, connection_string: str, table: str, quote: str,
    values: pl.DataFrame, columns: Sequence[ColumnSpec],
) -> None:
    """Roll back and raise ExportError when ``_changed_on_write`` finds a changed value or cannot read the rows back."""
    try:
        changed = _changed_on_write(connection, table, quote, values, columns)
    except pyodbc.Error as exc:
        reason = _error_text(exc, connection_string)
        _rollback(connection, pyodbc)
        logger.error("ODBC export to %s: reading the rows back failed and the write was rolled back: %s", table, reason)
        raise ExportError(
            f"Reading the written rows back from {table} failed, so the write was rolled back and nothing was written: {reason}"
        ) from None
    if not changed:
        return

    _rollback(connection, pyodbc)
    offending = len({p["row"] for p in changed})
    logger.error("ODBC export to %s rolled back: the database changed %d values in %d rows", table, len(changed), offending)
    raise ExportError(
        f"{table} stored {len(changed)} values of {offending} rows differently from what was sent, "
        "so the write was rolled back and nothing was written. " + _summary(changed),
        rows=changed,
    )


def write_staging(rows: pl.DataFrame, settings: Settings, dry_run: bool = False) -> WriteResult:
    """Insert routing rows into ``settings.staging_table`` in one transaction: all rows or none.

    Names of ``rows`` and table columns are compared without regard to case.
    Every column of ``rows`` that is one of ``ERP_EXPORT_COLUMNS`` must exist in
    the table. None is optional, because a table without, say, SETUP_TIME or
    RES_CD would take the routing and silently lose those values. Other columns
    of ``rows`` that the table lacks are left out and logged. Before writing,
    every row is checked against the table's declared types. Any one of these
    rejects the whole batch:

    * an export column missing from the table (rule missing_column, ``row`` None);
    * text longer than the column (text is never truncated);
    * a non-numeric value in a numeric column, or a fraction in an integer column;
    * a code (``ERP_CODE_COLUMNS``) in a numeric column unless its text is a plain
      whole number, because ``000123`` would be stored as 123;
    * number text in a SQLite text column with numeric affinity (``numeric_text``)
      unless it is a plain whole number;
    * a number too large for a decimal column or outside an integer type's range;
    * a number with more decimals than a decimal column's scale, because it would be rounded;
    * text that is not a date in a date column;
    * NULL in a NOT NULL column.

    Empty text becomes NULL. Dates and datetimes are sent as dates. After the
    INSERT and before COMMIT, the text values are read back (``_changed_on_write``),
    and a value the database changed rolls the batch back (rule changed_on_write).

    ``dry_run`` runs every check and sends no INSERT, so it skips the read-back.
    Raises ExportError, whose ``rows`` name each rejected value (see ``check_rows``)
    or the row the database rejected; the table is then unchanged. Raises ConfigError or
    SourceUnavailableError when nothing could be tried.
    """
    start = time.perf_counter()
    table = _checked_identifier("staging_table", settings.staging_table)
    connection_string = _connection_string(settings)
    pyodbc = _import_pyodbc()
    logger.info("ODBC export to %s started: %d rows, dry_run=%s", table, rows.height, dry_run)

    connection = _connect(pyodbc, connection_string, autocommit=False)
    try:
        try:
            _, columns = _table_columns(connection, pyodbc, table)
        except pyodbc.Error as exc:
            reason = _error_text(exc, connection_string)
            logger.error("ODBC export: reading the columns of %s failed: %s", table, reason)
            if _is_unavailable_error(exc):
                raise SourceUnavailableError(f"Staging table {table} cannot be read: {reason}") from None
            raise ExportError(f"Staging table {table} cannot be read: {reason}. Nothing was written.") from None

        missing = missing_export_columns(rows.columns, columns)
        if missing:
            raise _missing_columns_error(table, missing)
        table_names = {spec.name.lower() for spec in columns}
        left_out = [c for c in rows.columns if c.lower() not in table_names]
        if left_out:
            logger.warning("ODBC export to %s: columns %s are not in the table and are not written",
                           table, ", ".join(left_out))

        values, problems = check_rows(rows, columns)
        if values.width == 0:
            raise ExportError(
                f"No column of the rows exists in staging table {table} "
                f"(rows have {', '.join(rows.columns[:8])}). Nothing was written."
            )
        if problems:
            offending = len({p["row"] for p in problems})
            logger.error("ODBC export to %s rejected: %d rows with %d invalid values", table, offending, len(problems))
            raise ExportError(
                f"{offending} of {rows.height} rows cannot be written to {table}, so nothing was written. "
                + _summary(problems),
                rows=problems,
            )

        written = values.columns
        if dry_run or values.height == 0:
            seconds = round(time.perf_counter() - start, 3)
            logger.info("ODBC export to %s: %d rows checked, none written, in %.2f s", table, values.height, seconds)
            return WriteResult(0, table, seconds, dry_run, rows_checked=values.height, columns=tuple(written))

        quote = _identifier_quote(connection, pyodbc)
        statement = (
            f"INSERT INTO {table} ({', '.join(_quote_identifier(c, quote) for c in written)}) "
            f"VALUES ({', '.join('?' * len(written))})"
        )
        parameters = values.rows()
        cursor = connection.cursor()
        try:
            cursor.executemany(statement, parameters)
        except pyodbc.Error as exc:
            _rollback(connection, pyodbc)
            raise _insert_error(exc, connection, pyodbc, connection_string, table, statement, parameters, rows) from None
        finally:
            cursor.close()

        _verify_before_commit(connection, pyodbc, connection_string, table, quote, values, columns)
        try:
            connection.commit()
        except pyodbc.Error as exc:
            reason = _error_text(exc, connection_string)
            logger.error("ODBC export to %s: commit failed: %s", table, reason)
            if _is_unavailable_error(exc):
                # NOTE: a connection lost during COMMIT leaves the outcome unknown to the client.
                raise ExportError(
                    f"Commit to {table} failed because the connection was lost, so it is unknown "
                    f"whether the rows were written. Check the table before exporting again: {reason}"
                ) from None
            _rollback(connection, pyodbc)
            raise ExportError(f"Commit to {table} failed and was rolled back, nothing was written: {reason}") from None
    finally:
        connection.close()

    seconds = round(time.perf_counter() - start, 3)
    logger.info("ODBC export to %s: %d rows written in %.2f s", table, len(parameters), seconds)
    return WriteResult(len(parameters), table, seconds, False, rows_checked=len(parameters), columns=tuple(written))


# --- DDL for tests and documentation ------------------------------------------------


_STAGING_TYPES = {
    "ITEM_CD": ("text", 50), "ROUT_NO": ("text", 10), "PROC_SEQ": ("int", None),
    "JOB_CD": ("text", 20), "JOB_NM": ("text", 100), "RES_CD": ("text", 20), "WC_CD": ("text", 20),
    "INSIDE_FLG": ("text", 4), "TIME_UNIT": ("text", 4), "SETUP_TIME": ("decimal", None),
    "RUN_TIME": ("decimal", None), "RUN_TIME_QTY": ("decimal", None), "QUEUE_TIME": ("decimal", None),
    "WAIT_TIME": ("decimal", None), "MOVE_TIME": ("decimal", None), "MFG_LT": ("decimal", None),
    "INSP_FLG": ("text", 1), "MILESTONE_FLG": ("text", 1), "BP_CD": ("text", 20),
    "VALID_FROM_DT": ("date", None), "VALID_TO_DT": ("date", None),
}
_STAGING_NOT_NULL = {"ITEM_CD", "ROUT_NO", "PROC_SEQ", "JOB_CD"}


def create_staging_table_sql(dialect: Literal["mssql", "postgresql", "sqlite"], table: str = "ROUTING_STAGING") -> str:
    """Return CREATE TABLE for an example staging table with ERP_EXPORT_COLUMNS.

    The lengths are examples, because the ERP's own staging table decides. The key is
    (ITEM_CD, ROUT_NO, PROC_SEQ). Column names are quoted, so PostgreSQL keeps
    the upper-case ERP spelling.
    """
    if dialect not in ("mssql", "postgresql", "sqlite"):
        raise ValueError(f"unknown dialect {dialect!r}: expected mssql, postgresql or sqlite")
    table = validate_identifier(table)
    text_type = "nvarchar" if dialect == "mssql" else "varchar"
    lines = []
    for column in ERP_EXPORT_COLUMNS:
        kind, length = _STAGING_TYPES[column]
        sql_types = {"text": f"{text_type}({length})", "int": "integer", "decimal": "decimal(18,4)", "date": "date"}
        sql_type = sql_types[kind]
        null = " NOT NULL" if column in _STAGING_NOT_NULL else ""
        lines.append(f'    "{column}" {sql_type}{null}')
    lines.append('    PRIMARY KEY ("ITEM_CD", "ROUT_NO", "PROC_SEQ")')
    return f"CREATE TABLE {table} (\n" + ",\n".join(lines) + "\n)"
