"""Tests of routing_core.odbc against the real SQLite ODBC driver and a real PostgreSQL server (psqlODBC)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from routing_core import odbc
from routing_core.config import Settings, load_settings
from routing_core.errors import ConfigError, DataError, ExportError, SourceUnavailableError
from routing_core.odbc import ColumnSpec, check_rows, mask_connection_string

from tests.odbc_servers import (
    POSTGRES_DRIVER, SQLITE_DRIVER, require_driver, require_pyodbc, skip_or_fail, sqlite_connection_string,
)

REPO = Path(__file__).resolve().parents[1]
DRIVERS = ["sqlite", "postgresql"]
ENGINES = ["arrow-odbc", "pyodbc"]


# --- a small ERP data set --------------------------------------------------------
# Hangul names, decimals, dates, NULLs, codes with leading zeros, the ERP spelling
# INSIDE_FLG, operations stored out of order and a missing work centre.

ITEMS = pl.DataFrame(
    {
        "ITEM_CD": ["000123", "H10001-GS", "H10002-GS", "MS-300", "MS-301"],
        "ITEM_NM": ["메카니컬 씰 A형", "씰 링 (SiC)", "카본 링", None, "슬리브 316SS"],
        "ITEM_TYPE": ["FERT", "HALB", "HALB", "FERT", "HALB"],
        "PART_TYPE": ["SEAL", "RING", "RING", "SEAL", "SLEEVE"],
        "ITEM_MATERIAL": ["SiC", "SiC", "카본", None, "316SS"],
        "OUTDIAMETER": [45.5, 1.25, 60.0, None, 32.125],
        "OUTDIAMETER_UNIT": ["mm", "inch", "mm", None, "mm"],
        "OUTTHICKNESS": [8.0, 0.3125, None, 12.5, 4.0],
        "STANDARD_YN": ["Y", "N", "Y", None, "N"],
        "SealTypeGrup": ["싱글", "더블", "싱글", None, "싱글"],
    }
)

ROUTINGS = pl.DataFrame(
    {
        "ITEM_CD": ["000123"] * 4 + ["H10001-GS"] * 3 + ["H10002-GS"] * 2 + ["MS-301"] * 2,
        "ROUT_NO": ["B#1L00C"] * 4 + ["R01"] * 3 + ["R01"] * 2 + ["R01", "R02"],
        "PROC_SEQ": [10, 20, 40, 30, 10, 20, 30, 10, 20, 10, 10],
        "JOB_CD": ["F61-1", "F40-1", "Q30-1", "F45-2", "F61-1", "G10-1", "Q30-1", "F61-1", "Q30-1", "F61-1", "F62-1"],
        "JOB_NM": ["선삭", "연마", "최종 검사", "래핑", "선삭", "외주 코팅", "검사", "선삭", "검사", "선삭", "선삭(신)"],
        "RES_CD": ["CNC-01", "GRD-02", "INS-01", "LAP-01", "CNC-01", None, "INS-01", "CNC-대기", "INS-01", "CNC-01", "CNC-02"],
        "WC_CD": ["151211", "151212", None, "151213", "151211", "OUT-01", None, "151211", None, "151211", "151211"],
        "INSIDE_FLG": ["Y", "Y", "Y", "Y", "사내", "외주", "사내", "Y", "Y", "Y", "N"],
        "TIME_UNIT": ["M", "M", "M", "M", "분", "M", "M", "H", "M", "M", "M"],
        "SETUP_TIME": [12.5, 0.0, 5.0, 3.25, 10.0, 0.0, None, 0.5, 2.0, 8.0, 9.0],
        "RUN_TIME": [38.0, 16.0, 2.5, 7.125, 30.0, 0.0, 1.5, 0.75, 1.0, 20.0, 21.0],
        "RUN_TIME_QTY": [1.0] * 11,
        "MFG_LT": [0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "BP_CD": [None, None, None, None, None, "BP-코팅", None, None, None, None, None],
        "MAJOR_FLG": ["Y"] * 10 + ["N"],
        # Datetimes at midnight, as the ERP stores them (2001-01-01 00:00:00.000).
        "VALID_FROM_DT": [datetime(2001, 1, 1)] * 9 + [datetime(2020, 1, 1), datetime(2024, 6, 1)],
        "VALID_TO_DT": [date(2999, 12, 31)] * 11,
    }
)

WORK_ORDERS = pl.DataFrame(
    {
        "ITEM_CD": ["000123", "000123", "H10001-GS", "H10002-GS", "MS-301"],
        "ROUT_NO": ["B#1L00C", "B#1L00C", "R01", "R01", "R01"],
        "PROC_SEQ": [10, 20, 10, 10, 10],
        "JOB_CD": ["F61-1", "F40-1", "F61-1", "F61-1", "F61-1"],
        "RES_CD": ["CNC-01", "GRD-02", "CNC-01", "CNC-대기", "CNC-01"],
        "REPORT_DT": [date(2023, 9, 15), date(2023, 9, 16), date(2024, 1, 5), date(2024, 3, 2), date(2025, 2, 1)],
        "SETUP_HOURS": [0.25, 0.0, 0.2, 0.5, None],
        "MACH_WORKED_HOURS": [6.5, 2.75, 5.0, 1.0, 3.0],
        "ORDER_QTY": [10.0, 10.0, 8.0, 4.0, 9.0],
        "BAD_QTY": [0.0, 1.0, 0.0, 4.0, 0.0],
    }
)


def _sql_type(dtype: pl.DataType) -> str:
    """Return the column type used to store a frame column in the test databases."""
    if dtype == pl.Float64:
        return "decimal(18,4)"
    if dtype == pl.Int64:
        return "integer"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Datetime:
        return "timestamp"
    return "varchar(100)"


def _create_table(cursor: Any, name: str, frame: pl.DataFrame, *, quote: bool, not_null: tuple[str, ...] = ()) -> None:
    """Create a table from a frame's columns and insert its rows."""
    def column(n: str) -> str:
        return f'"{n}"' if quote else n

    columns = ", ".join(
        f"{column(n)} {_sql_type(t)}{' NOT NULL' if n in not_null else ''}" for n, t in frame.schema.items()
    )
    cursor.execute(f"CREATE TABLE {name} ({columns})")
    marks = ", ".join("?" * frame.width)
    cursor.executemany(f"INSERT INTO {name} ({', '.join(column(n) for n in frame.columns)}) VALUES ({marks})", frame.rows())


@dataclass(frozen=True)
class Target:
    """One database reached through one ODBC driver."""

    name: str
    connection_string: str
    item_view: str
    routing_view: str
    work_order_view: str
    staging_table: str

    def settings(self, **overrides: Any) -> Settings:
        values = {
            "data_source": "odbc",
            "odbc_connection_string": self.connection_string,
            "item_view": self.item_view,
            "routing_view": self.routing_view,
            "work_order_view": self.work_order_view,
            "staging_table": self.staging_table,
        }
        values.update(overrides)
        return load_settings(**values)

    def connect(self, autocommit: bool = True) -> Any:
        pyodbc = require_pyodbc()
        return pyodbc.connect(self.connection_string, autocommit=autocommit)


def _sqlite_target(path: Path) -> Target:
    require_driver(SQLITE_DRIVER)
    return Target("sqlite", sqlite_connection_string(path), "BI_ITEM_INFO_VIEW", "BI_ROUTING_VIEW",
                  "BI_WORK_ORDER_RESULTS", "ROUTING_STAGING")


def _postgres_target(server: Any, schema_name: str) -> Target:
    require_driver(POSTGRES_DRIVER)
    server.psql(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE; CREATE SCHEMA {schema_name}")
    return Target("postgresql", server.connection_string(), f"{schema_name}.BI_ITEM_INFO_VIEW",
                  f"{schema_name}.BI_ROUTING_VIEW", f"{schema_name}.BI_WORK_ORDER_RESULTS",
                  f"{schema_name}.ROUTING_STAGING")


def _load_views(target: Target) -> None:
    """Create the three views: SQLite with upper-case names, PostgreSQL with folded lower-case ones.

    The routing view is a real view over an ERP table that spells INSIDE_FLG.
    """
    quote = target.name == "sqlite"
    routing_table = target.routing_view.replace("BI_ROUTING_VIEW", "ERP_ROUTING")
    connection = target.connect()
    cursor = connection.cursor()
    _create_table(cursor, target.item_view, ITEMS, quote=quote, not_null=("ITEM_CD",))
    _create_table(cursor, routing_table, ROUTINGS, quote=quote, not_null=("ITEM_CD", "PROC_SEQ"))
    cursor.execute(f"CREATE VIEW {target.routing_view} AS SELECT * FROM {routing_table}")
    _create_table(cursor, target.work_order_view, WORK_ORDERS, quote=quote)
    connection.close()


@pytest.fixture(scope="module", params=DRIVERS)
def views_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Target:
    """A database holding the three views, once per driver."""
    if request.param == "sqlite":
        target = _sqlite_target(tmp_path_factory.mktemp("odbc") / "erp.db")
    else:
        target = _postgres_target(request.getfixturevalue("postgres_server"), "erp_views")
    _load_views(target)
    return target


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The reader behind read_views_odbc; arrow-odbc must be installed (it is in requirements.txt)."""
    if request.param == "arrow-odbc":
        require_pyodbc()
        try:
            import arrow_odbc  # noqa: F401
        except (ImportError, OSError) as exc:
            skip_or_fail(f"arrow-odbc cannot be imported ({exc}): pip install -r requirements.txt")
    return str(request.param)


@pytest.fixture(params=DRIVERS)
def staging_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A database with an empty staging table (example DDL, key ITEM_CD, ROUT_NO, PROC_SEQ)."""
    if request.param == "sqlite":
        target = _sqlite_target(tmp_path / "staging.db")
        dialect = "sqlite"
    else:
        target = _postgres_target(request.getfixturevalue("postgres_server"), "erp_staging")
        dialect = "postgresql"
    connection = target.connect()
    connection.cursor().execute(odbc.create_staging_table_sql(dialect, target.staging_table))
    connection.close()
    yield target


def _table_rows(target: Target) -> list[tuple[Any, ...]]:
    """Return every staging row as text, sorted, so two snapshots compare exactly."""
    connection = target.connect()
    cursor = connection.cursor()
    cursor.execute(f"SELECT * FROM {target.staging_table}")
    rows = sorted(tuple("" if v is None else str(v) for v in row) for row in cursor.fetchall())
    connection.close()
    return rows


def _read_back(target: Target, like: pl.DataFrame) -> pl.DataFrame:
    """Read the staging table into the dtypes of ``like``, sorted by the key."""
    connection = target.connect()
    frame = pl.read_database(f"SELECT * FROM {target.staging_table}", connection)
    connection.close()
    casts = []
    for name, dtype in like.schema.items():
        column = pl.col(name)
        if frame.schema[name] == pl.String and dtype != pl.String:
            column = column.str.strip_chars()
        casts.append(column.cast(dtype).alias(name))
    return frame.select(casts).sort("ITEM_CD", "ROUT_NO", "PROC_SEQ")


def export_rows() -> pl.DataFrame:
    """Five valid routing detail rows of two items, in the ERP export columns."""
    return pl.DataFrame(
        {
            "ITEM_CD": ["NEW-0001"] * 3 + ["NEW-0002"] * 2,
            "ROUT_NO": ["R01"] * 5,
            "PROC_SEQ": [10, 20, 30, 10, 20],
            "JOB_CD": ["F61-1", "G10-1", "Q30-1", "F61-1", "Q30-1"],
            "JOB_NM": ["선삭 가공", "외주 코팅", "최종 검사", "선삭", "검사"],
            "RES_CD": ["CNC-01", None, "INS-01", "CNC-대기", "INS-01"],
            "WC_CD": ["151211", "OUT-01", None, "151211", None],
            "INSIDE_FLG": ["사내", "외주", "사내", "Y", "Y"],
            "TIME_UNIT": ["M"] * 5,
            "SETUP_TIME": [12.5, 0.0, 5.0, 10.25, 2.0],
            "RUN_TIME": [38.0, 0.0, 2.5, 30.125, 1.0],
            "RUN_TIME_QTY": [1.0] * 5,
            "QUEUE_TIME": [0.0] * 5,
            "WAIT_TIME": [200.0, 0.0, 0.0, 0.0, 0.0],
            "MOVE_TIME": [200.0, 0.0, 0.0, 0.0, 0.0],
            "MFG_LT": [0.0, 3.0, 0.0, 0.0, 0.0],
            "INSP_FLG": ["N", "N", "Y", "N", "Y"],
            "MILESTONE_FLG": ["Y"] * 5,
            "BP_CD": [None, "BP-코팅", None, None, None],
            "VALID_FROM_DT": [date(2026, 1, 1)] * 5,
            "VALID_TO_DT": [date(2999, 12, 31)] * 5,
        }
    )


def _existing_row(target: Target) -> list[tuple[Any, ...]]:
    """Commit one row so that 'unchanged' means more than 'empty', and return the table snapshot."""
    odbc.write_staging(export_rows().head(1).with_columns(pl.lit("OLD-0001").alias("ITEM_CD")), target.settings())
    return _table_rows(target)


# --- connection strings and availability (no driver needed) --------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Uid=routing;Pwd={pw;x}",
         "Driver={PostgreSQL Unicode};Server=127.0.0.1;Uid=***;Pwd=***"),
        ("DSN=erp;UID=sa;PWD=abc", "DSN=erp;UID=***;PWD=***"),
        ("Driver={X};Password={a}}b;c};Server=s", "Driver={X};Password=***;Server=s"),
        ("Driver={X};User ID=me;Username=me2", "Driver={X};User ID=***;Username=***"),
        ("Driver=SQLite3;Database=/tmp/a.db", "Driver=SQLite3;Database=/tmp/a.db"),
        ("Driver={X};PWD={unclosed;Server=s", "Driver={X};PWD=***"),
        ("Driver={X;Server=s;PWD=p", "Driver=***"),
    ],
)
def test_mask_connection_string(text: str, expected: str) -> None:
    assert mask_connection_string(text) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # Text that only equals the password stays as it is.
        ('ERROR: relation "routing_staging_test" does not exist', 'ERROR: relation "routing_staging_test" does not exist'),
        ("row 12 has 120 values", "row 12 has 120 values"),
        # Values of secret keys are masked, braced values whole and unbraced ones up to the next ";".
        ("Invalid attribute PWD=e", "Invalid attribute PWD=***"),
        ("Password = my pass;Server=s", "Password = ***;Server=s"),
        ("bad value PWD={e;x}}y} in string", "bad value PWD=*** in string"),
        ("unclosed Pwd={e;x", "unclosed Pwd=***"),
        ("Uid=me;pwd=e", "Uid=***;pwd=***"),
        # A key that is part of a longer word is no key.
        ("mypwd=e", "mypwd=e"),
        # The whole connection string is replaced by its masked form, and the text after it stays.
        ("cannot use Driver={X};Uid=me;Pwd=e here", "cannot use Driver={X};Uid=***;Pwd=*** here"),
    ],
)
def test_scrub_masks_only_secret_values(message: str, expected: str) -> None:
    assert odbc._scrub(message, "Driver={X};Uid=me;Pwd=e") == expected


def test_scrub_keeps_numbers_equal_to_password() -> None:
    assert odbc._scrub("row 12 has 120 values; PWD=12", "Driver={X};Pwd=12") == "row 12 has 120 values; PWD=***"


def test_odbc_unavailable_without_unixodbc() -> None:
    """With pyodbc unimportable, routing_core imports and odbc reports the install hint."""
    script = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        sys.modules["pyodbc"] = None  # import pyodbc now raises ImportError
        sys.modules["arrow_odbc"] = None  # arrow-odbc loads libodbc too
        import routing_core
        from routing_core import odbc
        from routing_core.config import load_settings
        from routing_core.errors import SourceUnavailableError
        broken = []
        for module in pkgutil.iter_modules(routing_core.__path__):
            if module.name.startswith("__"):
                continue  # __main__ runs the command line
            try:
                importlib.import_module(f"routing_core.{module.name}")
            except Exception as exc:
                if "pyodbc" in str(exc):
                    broken.append(module.name)
        ok, message = odbc.odbc_available()
        settings = load_settings(data_source="odbc", odbc_connection_string="Driver=SQLite3;Database=x.db")
        try:
            odbc.read_views_odbc(settings)
            raised = ""
        except SourceUnavailableError as exc:
            raised = str(exc)
        print(json.dumps({"ok": ok, "message": message, "broken": broken, "raised": raised}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] is False
    assert "apt-get install unixodbc" in report["message"]
    assert "Microsoft ODBC Driver 18" in report["message"]
    assert report["broken"] == []
    assert "apt-get install unixodbc" in report["raised"]


def test_odbc_available_lists_drivers() -> None:
    require_pyodbc()
    ok, message = odbc.odbc_available()
    assert ok is True
    assert "pyodbc" in message


def test_missing_connection_string_is_config_error() -> None:
    settings = load_settings(data_source="odbc", odbc_connection_string=None)
    with pytest.raises(ConfigError, match="ROUTING_ODBC_CONNECTION_STRING"):
        odbc.read_views_odbc(settings)
    with pytest.raises(ConfigError, match="ROUTING_ODBC_CONNECTION_STRING"):
        odbc.write_staging(export_rows(), settings)
    assert odbc.test_connection(settings)["ok"] is False


def test_create_staging_table_sql_rejects_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="unknown dialect"):
        odbc.create_staging_table_sql("oracle")  # type: ignore[arg-type]
    assert '"INSIDE_FLG" varchar(4)' in odbc.create_staging_table_sql("postgresql")
    assert '"JOB_NM" nvarchar(100)' in odbc.create_staging_table_sql("mssql")


def test_check_rows_reports_each_bad_value() -> None:
    """The checks alone, on declared column specs: one entry per rejected value, in row order."""
    columns = [
        ColumnSpec("ITEM_CD", "string", "varchar(5)", size=5, nullable=False),
        ColumnSpec("PROC_SEQ", "integer", "int", nullable=False),
        ColumnSpec("SETUP_TIME", "decimal", "decimal(6,2)", precision=6, scale=2),
        ColumnSpec("VALID_FROM_DT", "date", "date"),
    ]
    rows = pl.DataFrame(
        {
            "item_cd": ["A1", "TOOLONG", "", "B2"],
            "PROC_SEQ": ["10", "", "10.5", "x"],
            "SETUP_TIME": ["1.5", "12분", "10000", ""],
            "VALID_FROM_DT": ["2026-01-02", "20260103", "2026-13-01", None],
            "UNKNOWN": [1, 2, 3, 4],
        }
    )

    values, problems = check_rows(rows, columns)

    found = [(p["row"], p["column"], p["rule"]) for p in problems]
    assert found == [
        (1, "ITEM_CD", "too_long"),
        (1, "PROC_SEQ", "not_null"),
        (1, "SETUP_TIME", "not_numeric"),
        (2, "ITEM_CD", "not_null"),
        (2, "PROC_SEQ", "not_integer"),
        (2, "SETUP_TIME", "out_of_range"),
        (2, "VALID_FROM_DT", "not_date"),
        (3, "PROC_SEQ", "not_numeric"),
    ]
    assert values.columns == ["ITEM_CD", "PROC_SEQ", "SETUP_TIME", "VALID_FROM_DT"]
    assert values.row(0) == ("A1", 10, 1.5, date(2026, 1, 2))
    assert values.row(3)[2] is None
    assert problems[0]["ITEM_CD"] == "TOOLONG"
    assert problems[0]["value"] == "TOOLONG"
    assert "longer than the column's 5" in problems[0]["reason"]


def test_check_rows_rejects_codes_that_change_as_numbers() -> None:
    """A code written into a number column must read the same afterwards, while other columns take any number text."""
    columns = [
        ColumnSpec("ITEM_CD", "integer", "integer"),
        ColumnSpec("ROUT_NO", "decimal", "decimal(10,0)", precision=10, scale=0),
        ColumnSpec("SETUP_TIME", "decimal", "decimal(10,4)", precision=10, scale=4),
    ]
    codes = ["000123", "123", "12.0", " 12", "1e3", "+5", "-5", "0", "A1"]
    rows = pl.DataFrame({
        "ITEM_CD": codes,
        "ROUT_NO": ["01"] + ["1"] * (len(codes) - 1),
        "SETUP_TIME": ["1.50", " 2", "1e1", "+3", "0", "0", "0", "0", "0"],
    })

    values, problems = check_rows(rows, columns)

    assert [(p["row"], p["column"], p["rule"]) for p in problems] == [
        (0, "ITEM_CD", "code_changed"),
        (0, "ROUT_NO", "code_changed"),
        (2, "ITEM_CD", "code_changed"),
        (3, "ITEM_CD", "code_changed"),
        (4, "ITEM_CD", "code_changed"),
        (5, "ITEM_CD", "code_changed"),
        (8, "ITEM_CD", "not_numeric"),
    ]
    assert problems[0]["value"] == "000123"
    assert "stored as the number 123" in problems[0]["reason"]
    assert "stored as the number 1 " in problems[1]["reason"]
    assert values["ITEM_CD"].to_list()[1] == 123
    assert values["SETUP_TIME"].to_list()[:4] == [1.5, 2.0, 10.0, 3.0]

    # Float64 represents whole numbers exactly only up to 2**53, so a 19-digit code would change.
    long_codes = pl.DataFrame({"ITEM_CD": ["1234567890123456789", "123456789012345"]})
    _, problems = check_rows(long_codes, [ColumnSpec("ITEM_CD", "integer", "bigint")])
    assert [(p["row"], p["rule"]) for p in problems] == [(0, "code_changed")]


def test_check_rows_rejects_decimals_beyond_scale() -> None:
    """A number that a decimal column would round is rejected with what it would become; float noise is not."""
    columns = [
        ColumnSpec("SETUP_TIME", "decimal", "numeric", precision=10, scale=1),
        ColumnSpec("RUN_TIME", "decimal", "decimal(18,4)", precision=18, scale=4),
        ColumnSpec("QUEUE_TIME", "decimal", "money", precision=10, scale=0),
        ColumnSpec("WAIT_TIME", "float", "real"),
    ]
    rows = pl.DataFrame({
        "SETUP_TIME": [12.345, 0.04, 1.25, 12.3, 0.1 + 0.2, None],
        "RUN_TIME": [1234567.12345, 0.0001, 1e-05, 2.5, 0.1 + 0.2, 1.0],
        "QUEUE_TIME": [12.5] * 6,
        "WAIT_TIME": [0.123456789] * 6,
    })

    values, problems = check_rows(rows, columns)

    assert [(p["row"], p["column"], p["rule"], p["value"]) for p in problems] == [
        (0, "SETUP_TIME", "too_many_decimals", "12.345 → 12.3"),
        (0, "RUN_TIME", "too_many_decimals", "1234567.12345 → 1234567.1235"),
        (1, "SETUP_TIME", "too_many_decimals", "0.04 → 0.0"),
        (2, "SETUP_TIME", "too_many_decimals", "1.25 → 1.3"),
        (2, "RUN_TIME", "too_many_decimals", "0.00001 → 0.0"),
    ]
    assert "0.04 has more decimals than decimal(10,1) keeps and would be stored as 0.0" in problems[2]["reason"]
    assert values["SETUP_TIME"].to_list()[3:5] == [12.3, 0.1 + 0.2]


def test_numeric_text_check_matches_sqlite(tmp_path: Path) -> None:
    """Text that a SQLite STRING column stores in another form is rejected, and text it keeps as text is not."""
    require_driver(SQLITE_DRIVER)
    pyodbc = require_pyodbc()
    texts = ["000123", "123", " 12", "12 ", "\t12", "12\n", "1.", ".5", "1e5", "+5", "-5", "-0", "12.0", "1.50",
             "1.5", "9223372036854775807", "9223372036854775808", "1e400", "0x10", "inf", "NaN", "1_0", "１２",
             "A1", "2026-01-01", "1,5", "선삭 10"]
    connection = pyodbc.connect(sqlite_connection_string(tmp_path / "affinity.db"), autocommit=True)
    cursor = connection.cursor()
    cursor.execute('CREATE TABLE T ("POSITION" integer, "JOB_NM" STRING)')
    cursor.executemany("INSERT INTO T VALUES (?, ?)", list(enumerate(texts)))
    stored = cursor.execute('SELECT "POSITION", "JOB_NM", typeof("JOB_NM") FROM T ORDER BY 1').fetchall()
    connection.close()

    spec = ColumnSpec("JOB_NM", "string", "STRING", numeric_text=True)
    _, problems = check_rows(pl.DataFrame({"JOB_NM": texts}), [spec])

    rejected = {p["row"] for p in problems}
    for position, back, storage in stored:
        if back != texts[position]:
            assert position in rejected, texts[position]
        if storage == "text":
            assert position not in rejected, texts[position]
    assert {p["rule"] for p in problems} == {"text_changed"}
    assert "'000123' would be stored as the number 123" in problems[0]["reason"]

    code_spec = ColumnSpec("ITEM_CD", "string", "STRING", numeric_text=True)
    _, problems = check_rows(pl.DataFrame({"ITEM_CD": ["000123", "123", "A1"]}), [code_spec])
    assert [(p["row"], p["rule"]) for p in problems] == [(0, "code_changed")]


@pytest.mark.parametrize("rule", ["too_long", "not_null", "not_numeric", "code_changed", "text_changed", "not_integer",
                                  "out_of_range", "too_many_decimals", "not_date", "database", "missing_column",
                                  "changed_on_write"])
def test_problem_rule_has_locale_texts(rule: str) -> None:
    """The export page shows each rejected value through the locale text of its rule."""
    from routing_core import i18n

    assert i18n.has_key(f"odbc.rule.{rule}", "ko")
    assert i18n.has_key(f"odbc.rule.{rule}", "en")


# --- reading -----------------------------------------------------------------------


def test_read_views_counts_and_columns(views_target: Target, engine: str) -> None:
    raw = odbc.read_views_odbc(views_target.settings(), engine=engine)

    assert raw.items.height == ITEMS.height
    assert raw.routings.height == ROUTINGS.height
    assert raw.work_orders.height == WORK_ORDERS.height
    assert set(raw.items.columns) == set(ITEMS.columns)
    assert set(raw.work_orders.columns) == set(WORK_ORDERS.columns)
    assert "INSIDE_FLG" in raw.routings.columns
    assert "SealTypeGrup" in raw.items.columns


def test_read_views_types_and_hangul(views_target: Target, engine: str) -> None:
    raw = odbc.read_views_odbc(views_target.settings(), engine=engine)

    assert raw.items.schema["OUTDIAMETER"] == pl.Float64
    assert raw.routings.schema["SETUP_TIME"] == pl.Float64
    assert raw.work_orders.schema["MACH_WORKED_HOURS"] == pl.Float64
    assert raw.routings.schema["VALID_FROM_DT"] == pl.Datetime("us")
    assert raw.routings.schema["VALID_TO_DT"] == pl.Date
    assert raw.work_orders.schema["REPORT_DT"] == pl.Date

    items = raw.items.sort("ITEM_CD")
    expected = ITEMS.sort("ITEM_CD")
    assert items["ITEM_CD"].to_list() == expected["ITEM_CD"].to_list()
    assert items["ITEM_NM"].to_list() == expected["ITEM_NM"].to_list()
    assert items["SealTypeGrup"].to_list() == expected["SealTypeGrup"].to_list()
    assert items["OUTDIAMETER"].to_list() == expected["OUTDIAMETER"].to_list()

    routings = raw.routings.sort("ITEM_CD", "ROUT_NO", "PROC_SEQ")
    expected_routings = ROUTINGS.sort("ITEM_CD", "ROUT_NO", "PROC_SEQ")
    assert routings["JOB_NM"].to_list() == expected_routings["JOB_NM"].to_list()
    assert routings["INSIDE_FLG"].to_list() == expected_routings["INSIDE_FLG"].to_list()
    assert routings["BP_CD"].to_list() == expected_routings["BP_CD"].to_list()
    assert routings["VALID_TO_DT"].to_list() == expected_routings["VALID_TO_DT"].to_list()
    assert routings["VALID_FROM_DT"].to_list() == expected_routings["VALID_FROM_DT"].to_list()
    assert routings["PROC_SEQ"].dtype == pl.Int64


def test_read_views_batches_match_one_read(views_target: Target, engine: str) -> None:
    whole = odbc.read_views_odbc(views_target.settings(odbc_batch_size=100_000), engine=engine)
    batched = odbc.read_views_odbc(views_target.settings(odbc_batch_size=2), engine=engine)

    assert_frame_equal(whole.items, batched.items)
    assert_frame_equal(whole.routings, batched.routings)
    assert_frame_equal(whole.work_orders, batched.work_orders)


def test_read_views_item_filter(views_target: Target, engine: str) -> None:
    raw = odbc.read_views_odbc(views_target.settings(), engine=engine, item_codes=["000123", "MS-301"])

    assert sorted(raw.items["ITEM_CD"].to_list()) == ["000123", "MS-301"]
    assert raw.routings.height == 6
    assert sorted(set(raw.work_orders["ITEM_CD"].to_list())) == ["000123", "MS-301"]


def test_read_views_item_filter_is_parameterised(views_target: Target, engine: str) -> None:
    """A code that would widen a formatted WHERE clause matches nothing as a parameter."""
    raw = odbc.read_views_odbc(views_target.settings(), engine=engine, item_codes=["x' OR '1'='1"])

    assert raw.items.height == 0
    assert raw.routings.height == 0
    assert raw.routings.schema["SETUP_TIME"] == pl.Float64


def test_read_views_reported_until(views_target: Target, engine: str) -> None:
    raw = odbc.read_views_odbc(views_target.settings(), engine=engine, reported_until=date(2023, 12, 31))

    assert sorted(raw.work_orders["REPORT_DT"].to_list()) == [date(2023, 9, 15), date(2023, 9, 16)]
    assert raw.routings.height == ROUTINGS.height


def test_read_views_then_validate(views_target: Target, engine: str) -> None:
    from routing_core.validation import validate_views

    raw = odbc.read_views_odbc(views_target.settings(), engine=engine)
    try:
        views, report = validate_views(raw, reference_date=date(2026, 1, 1))
    except NotImplementedError:
        pytest.skip("validation.validate_views is not implemented yet")

    assert views.items.height == ITEMS.height
    assert views.routings.schema["SETUP_TIME"] == pl.Float64
    assert views.routings.schema["PROC_SEQ"] == pl.Int64
    assert views.routings.schema["VALID_FROM_DT"] == pl.Date
    assert views.work_orders.schema["REPORT_DT"] == pl.Date
    assert "카본 링" in views.items["ITEM_NM"].to_list()
    assert set(views.routings["INSIDE_FLAG"].drop_nulls().to_list()) <= {"Y", "N"}
    # The H-unit row of H10002-GS becomes minutes: 0.5 h set-up is 30 min.
    h_rows = views.routings.filter((pl.col("ITEM_CD") == "H10002-GS") & (pl.col("PROC_SEQ") == 10))
    assert h_rows["SETUP_TIME"].to_list() == [30.0]


def test_connection_reports_driver_and_counts(views_target: Target) -> None:
    result = odbc.test_connection(views_target.settings())

    assert result["ok"] is True, result
    assert result["error"] is None
    assert result["row_counts"] == {
        views_target.item_view: ITEMS.height,
        views_target.routing_view: ROUTINGS.height,
        views_target.work_order_view: WORK_ORDERS.height,
    }
    assert result["driver"]
    assert result["server_version"]
    assert result["seconds"] >= 0
    assert "Pwd=***" in result["connection"] or "Pwd" not in views_target.connection_string


def test_connection_reports_missing_view(views_target: Target) -> None:
    result = odbc.test_connection(views_target.settings(work_order_view="NO_SUCH_VIEW"))

    assert result["ok"] is False
    assert result["row_counts"]["NO_SUCH_VIEW"] is None
    assert "NO_SUCH_VIEW" in result["errors"]
    assert result["row_counts"][views_target.item_view] == ITEMS.height


def test_read_missing_view_raises_data_error(views_target: Target, engine: str) -> None:
    with pytest.raises(DataError, match="NO_SUCH_VIEW"):
        odbc.read_views_odbc(views_target.settings(routing_view="NO_SUCH_VIEW"), engine=engine)


def test_read_view_without_contract_columns(views_target: Target, engine: str) -> None:
    connection = views_target.connect()
    prefix = "erp_views." if views_target.name == "postgresql" else ""
    connection.cursor().execute(f"CREATE TABLE IF NOT EXISTS {prefix}UNRELATED (A integer, B varchar(5))")
    connection.close()

    with pytest.raises(DataError, match="none of the expected columns"):
        odbc.read_views_odbc(views_target.settings(item_view=f"{prefix}UNRELATED"), engine=engine)


def test_read_engines_agree(views_target: Target) -> None:
    """arrow-odbc (the default where installed) and pyodbc return equal frames."""
    by_pyodbc = odbc.read_views_odbc(views_target.settings(), engine="pyodbc")
    by_auto = odbc.read_views_odbc(views_target.settings(), engine="auto")

    assert_frame_equal(by_auto.items, by_pyodbc.items)
    assert_frame_equal(by_auto.routings, by_pyodbc.routings)
    assert_frame_equal(by_auto.work_orders, by_pyodbc.work_orders)


def test_read_long_text_falls_back_to_pyodbc(views_target: Target, engine: str) -> None:
    """Text longer than arrow-odbc's buffer: auto reads it whole with pyodbc, never truncated."""
    prefix = "erp_views." if views_target.name == "postgresql" else ""
    spec = "씰" * (odbc.ARROW_MAX_TEXT_SIZE + 500)
    connection = views_target.connect()
    cursor = connection.cursor()
    cursor.execute(f"DROP TABLE IF EXISTS {prefix}LONG_ITEMS")
    cursor.execute(f"CREATE TABLE {prefix}LONG_ITEMS (ITEM_CD varchar(20), ITEM_SPEC text)")
    cursor.execute(f"INSERT INTO {prefix}LONG_ITEMS VALUES (?, ?)", "L-1", spec)
    connection.close()
    settings = views_target.settings(item_view=f"{prefix}LONG_ITEMS")

    if engine == "arrow-odbc":
        with pytest.raises(DataError, match="LONG_ITEMS"):
            odbc.read_views_odbc(settings, engine=engine)
        raw = odbc.read_views_odbc(settings, engine="auto")
    else:
        raw = odbc.read_views_odbc(settings, engine=engine)

    assert raw.items["ITEM_SPEC"].to_list() == [spec]


def test_postgres_wrong_password_hides_secret(postgres_server: Any) -> None:
    require_driver(POSTGRES_DRIVER)
    wrong = postgres_server.connection_string().replace(postgres_server.password, "wrong;secret")
    settings = load_settings(data_source="odbc", odbc_connection_string=wrong)

    with pytest.raises(SourceUnavailableError) as caught:
        odbc.read_views_odbc(settings)
    assert "password authentication failed" in str(caught.value)
    assert "wrong;secret" not in str(caught.value)

    result = odbc.test_connection(settings)
    assert result["ok"] is False
    assert "wrong;secret" not in str(result)
    assert "Pwd=***" in result["connection"]


def test_postgres_short_password_leaves_message_readable(postgres_server: Any) -> None:
    """A one-letter wrong password is masked in the connection string but not in the words of the message."""
    require_driver(POSTGRES_DRIVER)
    wrong = postgres_server.connection_string().replace(f"Pwd={{{postgres_server.password}}}", "Pwd=e")
    settings = load_settings(data_source="odbc", odbc_connection_string=wrong)

    with pytest.raises(SourceUnavailableError) as caught:
        odbc.read_views_odbc(settings)

    assert "password authentication failed for user" in str(caught.value)
    assert "***" not in str(caught.value)
    assert odbc.test_connection(settings)["connection"].endswith("Uid=***;Pwd=***")


def test_sqlite_missing_table_message_readable(tmp_path: Path) -> None:
    require_driver(SQLITE_DRIVER)
    settings = load_settings(
        odbc_connection_string=f"{sqlite_connection_string(tmp_path / 'staging.db')};PWD=e", staging_table="NO_SUCH_TABLE"
    )

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(export_rows(), settings)

    assert "no such table: NO_SUCH_TABLE" in str(caught.value)
    assert "***" not in str(caught.value)


def test_unknown_driver_is_source_unavailable() -> None:
    require_pyodbc()
    settings = load_settings(data_source="odbc", odbc_connection_string="Driver={No Such Driver};PWD=topsecret")

    with pytest.raises(SourceUnavailableError) as caught:
        odbc.read_views_odbc(settings)
    assert "topsecret" not in str(caught.value)


# --- writing -----------------------------------------------------------------------


def test_write_good_batch_reads_back(staging_target: Target) -> None:
    rows = export_rows()

    result = odbc.write_staging(rows, staging_target.settings())

    assert result.rows_written == 5
    assert result.dry_run is False
    assert result.table == staging_target.staging_table
    assert result.columns == tuple(odbc.ERP_EXPORT_COLUMNS)
    assert_frame_equal(_read_back(staging_target, rows), rows.sort("ITEM_CD", "ROUT_NO", "PROC_SEQ"))


def test_write_too_long_text_rejected(staging_target: Target) -> None:
    before = _existing_row(staging_target)
    rows = export_rows().with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("가" * 101)).otherwise(pl.col("JOB_NM")).alias("JOB_NM")
    )

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [(3, "JOB_NM", "too_long")]
    assert caught.value.rows[0]["ITEM_CD"] == "NEW-0002"
    assert _table_rows(staging_target) == before


def test_write_empty_text_in_not_null_number_rejected(staging_target: Target) -> None:
    before = _existing_row(staging_target)
    rows = export_rows().with_columns(pl.col("PROC_SEQ").cast(pl.String))
    rows = rows.with_columns(pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("")).otherwise(pl.col("PROC_SEQ")).alias("PROC_SEQ"))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [(1, "PROC_SEQ", "not_null")]
    assert _table_rows(staging_target) == before


def test_write_non_numeric_text_rejected(staging_target: Target) -> None:
    before = _existing_row(staging_target)
    rows = export_rows().with_columns(pl.col("SETUP_TIME").cast(pl.String))
    rows = rows.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("12분")).otherwise(pl.col("SETUP_TIME")).alias("SETUP_TIME"))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    problem = caught.value.rows[0]
    assert (problem["row"], problem["column"], problem["rule"]) == (4, "SETUP_TIME", "not_numeric")
    assert problem["value"] == "12분"
    assert _table_rows(staging_target) == before


def test_write_empty_text_in_nullable_columns_becomes_null(staging_target: Target) -> None:
    rows = export_rows().with_columns(
        pl.col("SETUP_TIME").cast(pl.String),
        pl.lit("").alias("BP_CD"),
    )
    rows = rows.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("")).otherwise(pl.col("SETUP_TIME")).alias("SETUP_TIME"))

    assert odbc.write_staging(rows, staging_target.settings()).rows_written == 5

    back = _read_back(staging_target, export_rows())
    assert back["BP_CD"].null_count() == 5
    assert back.filter(pl.col("ITEM_CD") == "NEW-0001", pl.col("PROC_SEQ") == 10)["SETUP_TIME"].to_list() == [None]


def test_write_null_into_not_null_rejected(staging_target: Target) -> None:
    before = _existing_row(staging_target)
    rows = export_rows().with_columns(pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise(pl.col("JOB_CD")).alias("JOB_CD"))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [(2, "JOB_CD", "not_null")]
    assert _table_rows(staging_target) == before


def test_write_names_every_offending_row(staging_target: Target) -> None:
    rows = export_rows().with_columns(
        pl.Series("JOB_CD", ["F61-1", None, "Q30-1", None, "Q30-1"]),
        pl.Series("WC_CD", ["151211", "X" * 21, None, "151211", None]),
        pl.Series("PROC_SEQ", [10.0, 20.0, 30.5, 10.0, 20.0]),
    )

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [
        (1, "JOB_CD", "not_null"),
        (1, "WC_CD", "too_long"),
        (2, "PROC_SEQ", "not_integer"),
        (3, "JOB_CD", "not_null"),
    ]
    assert "3 of 5 rows" in str(caught.value)
    assert _table_rows(staging_target) == []


def test_write_decimal_overflow_rejected(staging_target: Target) -> None:
    rows = export_rows().with_columns(pl.Series("RUN_TIME", [38.0, 0.0, 1e14, 30.0, 1.0]))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [(2, "RUN_TIME", "out_of_range")]
    assert _table_rows(staging_target) == []


def test_write_duplicate_key_mid_batch_rolls_back(staging_target: Target) -> None:
    """Row 2 (the 3rd of 5) repeats row 0's key: the database rejects it and nothing stays."""
    before = _existing_row(staging_target)
    rows = export_rows().with_columns(pl.Series("PROC_SEQ", [10, 20, 10, 10, 20]))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert len(caught.value.rows) == 1
    assert caught.value.rows[0]["row"] == 2
    assert caught.value.rows[0]["ITEM_CD"] == "NEW-0001"
    assert caught.value.rows[0]["rule"] == "database"
    assert "unique" in caught.value.rows[0]["reason"].lower()
    assert _table_rows(staging_target) == before


def test_write_conflict_with_committed_row_rolls_back(staging_target: Target) -> None:
    before = _existing_row(staging_target)
    rows = pl.concat([export_rows(), export_rows().head(1).with_columns(pl.lit("OLD-0001").alias("ITEM_CD"))])

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert caught.value.rows[0]["row"] == 5
    assert _table_rows(staging_target) == before


def test_write_dry_run_writes_nothing(staging_target: Target) -> None:
    result = odbc.write_staging(export_rows(), staging_target.settings(), dry_run=True)

    assert result.dry_run is True
    assert result.rows_written == 0
    assert result.rows_checked == 5
    assert _table_rows(staging_target) == []

    bad = export_rows().with_columns(pl.lit(None, dtype=pl.String).alias("JOB_CD"))
    with pytest.raises(ExportError) as caught:
        odbc.write_staging(bad, staging_target.settings(), dry_run=True)
    assert [r["row"] for r in caught.value.rows] == [0, 1, 2, 3, 4]


def test_write_numpy_values_datetimes_and_extra_columns(staging_target: Target) -> None:
    """numpy scalars in an Object column, datetimes, lower-case names and unknown columns."""
    rows = export_rows()
    seq = pl.Series("proc_seq", [np.int64(v) for v in rows["PROC_SEQ"].to_list()], dtype=pl.Object)
    setup = pl.Series("SETUP_TIME", [np.float64(v) for v in rows["SETUP_TIME"].to_list()], dtype=pl.Object)
    frame = rows.drop("PROC_SEQ", "SETUP_TIME", "VALID_FROM_DT").with_columns(
        seq,
        setup,
        pl.lit(datetime(2026, 1, 1, 13, 30)).alias("VALID_FROM_DT"),
        pl.lit("not in the table").alias("REMARK"),
    )

    result = odbc.write_staging(frame, staging_target.settings())

    assert result.rows_written == 5
    assert "REMARK" not in result.columns
    assert_frame_equal(_read_back(staging_target, rows), rows.sort("ITEM_CD", "ROUT_NO", "PROC_SEQ"))


def test_write_empty_frame_writes_nothing(staging_target: Target) -> None:
    result = odbc.write_staging(export_rows().head(0), staging_target.settings())

    assert result.rows_written == 0
    assert _table_rows(staging_target) == []


def test_write_missing_table_raises(staging_target: Target) -> None:
    table = staging_target.staging_table.replace("ROUTING_STAGING", "NO_SUCH_TABLE")

    with pytest.raises(ExportError, match="NO_SUCH_TABLE"):
        odbc.write_staging(export_rows(), staging_target.settings(staging_table=table))


def _replace_staging_table(target: Target, dialect: str, replacements: dict[str, str]) -> None:
    """Recreate the staging table from the example DDL with text replacements. A replacement by "" drops the line."""
    lines = odbc.create_staging_table_sql(dialect, target.staging_table).splitlines()
    for old, new in replacements.items():
        if new:
            lines = [line.replace(old, new) for line in lines]
        else:
            lines = [line for line in lines if old not in line]
    connection = target.connect()
    connection.cursor().execute(f"DROP TABLE {target.staging_table}")
    connection.cursor().execute("\n".join(lines))
    connection.close()


@pytest.mark.parametrize("dry_run", [True, False])
def test_write_table_missing_export_column_rejected(staging_target: Target, dry_run: bool) -> None:
    _replace_staging_table(staging_target, staging_target.name, {'"RUN_TIME" ': "", '"INSP_FLG" ': ""})

    with pytest.raises(ExportError, match="has no column RUN_TIME, INSP_FLG") as caught:
        odbc.write_staging(export_rows(), staging_target.settings(), dry_run=dry_run)

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [
        (None, "RUN_TIME", "missing_column"), (None, "INSP_FLG", "missing_column"),
    ]
    assert _table_rows(staging_target) == []


def test_write_code_into_integer_column(staging_target: Target) -> None:
    _replace_staging_table(staging_target, staging_target.name, {'"ITEM_CD" varchar(50)': '"ITEM_CD" integer'})
    rows = export_rows().with_columns(pl.Series("ITEM_CD", ["000123"] * 3 + ["123"] * 2))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [(i, "ITEM_CD", "code_changed") for i in range(3)]
    assert "code '000123'" in str(caught.value)
    assert _table_rows(staging_target) == []

    assert odbc.write_staging(rows.tail(2), staging_target.settings()).rows_written == 2
    assert {row[0] for row in _table_rows(staging_target)} == {"123"}


@pytest.mark.parametrize("dry_run", [True, False])
def test_write_rounding_column_rejected(staging_target: Target, dry_run: bool) -> None:
    """A time column with one decimal would store 0.04 as 0.0, so the batch is rejected before any INSERT."""
    decimal = "numeric" if staging_target.name == "postgresql" else "decimal"
    _replace_staging_table(staging_target, staging_target.name, {
        '"SETUP_TIME" decimal(18,4)': f'"SETUP_TIME" {decimal}(10,1)',
        '"RUN_TIME" decimal(18,4)': f'"RUN_TIME" {decimal}(10,1)',
    })
    rows = export_rows().with_columns(
        pl.Series("SETUP_TIME", [12.5, 0.0, 5.0, 12.345, 2.0]), pl.Series("RUN_TIME", [0.04, 0.0, 2.5, 30.1, 1.25]),
    )

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings(), dry_run=dry_run)

    assert [(r["row"], r["column"], r["rule"], r["value"]) for r in caught.value.rows] == [
        (0, "RUN_TIME", "too_many_decimals", "0.04 → 0.0"),
        (3, "SETUP_TIME", "too_many_decimals", "12.345 → 12.3"),
        (4, "RUN_TIME", "too_many_decimals", "1.25 → 1.3"),
    ]
    assert "3 of 5 rows" in str(caught.value)
    assert _table_rows(staging_target) == []

    rounded = rows.with_columns(pl.col("SETUP_TIME", "RUN_TIME").round(1, mode="half_away_from_zero"))
    assert odbc.write_staging(rounded, staging_target.settings()).rows_written == 5


def test_sqlite_string_column_rejects_number_text(tmp_path: Path) -> None:
    """SQLite stores number text in a STRING or MEMO column as a number, so such text is rejected before writing."""
    target = _sqlite_target(tmp_path / "staging.db")
    ddl = (
        odbc.create_staging_table_sql("sqlite")
        .replace('"ITEM_CD" varchar(50)', '"ITEM_CD" STRING')
        .replace('"ROUT_NO" varchar(10)', '"ROUT_NO" STRING')
        .replace('"JOB_NM" varchar(100)', '"JOB_NM" MEMO')
    )
    connection = target.connect()
    connection.cursor().execute(ddl)
    connection.close()
    rows = export_rows().with_columns(
        pl.Series("ITEM_CD", ["000123"] * 3 + ["123"] * 2),
        pl.Series("ROUT_NO", ["01"] + ["R01"] * 4),
        pl.Series("JOB_NM", ["선삭", "007", "검사", "선삭", "1.50"]),
    )

    for dry_run in (True, False):
        with pytest.raises(ExportError) as caught:
            odbc.write_staging(rows, target.settings(), dry_run=dry_run)
        assert [(r["row"], r["column"], r["rule"]) for r in caught.value.rows] == [
            (0, "ITEM_CD", "code_changed"), (0, "ROUT_NO", "code_changed"),
            (1, "ITEM_CD", "code_changed"), (1, "JOB_NM", "text_changed"),
            (2, "ITEM_CD", "code_changed"), (4, "JOB_NM", "text_changed"),
        ]
    assert "code '000123' would be stored as the number 123, because SQLite gives a column declared STRING" in str(caught.value)
    assert _table_rows(target) == []

    plain = rows.tail(2).with_columns(pl.lit("선삭").alias("JOB_NM"))
    assert odbc.write_staging(plain, target.settings()).rows_written == 2
    assert {row[0] for row in _table_rows(target)} == {"123"}


def _add_upper_case_trigger(target: Target) -> None:
    """Make the staging table rewrite JOB_CD in upper case, as a column that silently changes text would."""
    connection = target.connect()
    cursor = connection.cursor()
    if target.name == "sqlite":
        cursor.execute(
            f"CREATE TRIGGER upper_job AFTER INSERT ON {target.staging_table} BEGIN "
            f'UPDATE {target.staging_table} SET "JOB_CD" = upper("JOB_CD") WHERE rowid = NEW.rowid; END'
        )
    else:
        schema_name = target.staging_table.split(".")[0]
        cursor.execute(
            f"CREATE FUNCTION {schema_name}.upper_job() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.\"JOB_CD\" := upper(NEW.\"JOB_CD\"); RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER upper_job BEFORE INSERT ON {target.staging_table} "
            f"FOR EACH ROW EXECUTE FUNCTION {schema_name}.upper_job()"
        )
    connection.close()


def test_write_rolls_back_values_the_database_changed(staging_target: Target) -> None:
    """The read-back before COMMIT finds text the database stored differently and rolls the batch back."""
    before = _existing_row(staging_target)
    _add_upper_case_trigger(staging_target)
    rows = export_rows().with_columns(pl.Series("JOB_CD", ["F61-1", "g10-1", "Q30-1", "F61-1", "q30-1"]))

    with pytest.raises(ExportError) as caught:
        odbc.write_staging(rows, staging_target.settings())

    assert [(r["row"], r["column"], r["rule"], r["value"]) for r in caught.value.rows] == [
        (1, "JOB_CD", "changed_on_write", "g10-1"), (4, "JOB_CD", "changed_on_write", "q30-1"),
    ]
    assert caught.value.rows[0]["ITEM_CD"] == "NEW-0001"
    assert "rolled back and nothing was written" in str(caught.value)
    assert _table_rows(staging_target) == before

    # The dry run sends no INSERT, so only the real write can find this.
    assert odbc.write_staging(rows, staging_target.settings(), dry_run=True).rows_checked == 5
    assert odbc.write_staging(export_rows(), staging_target.settings()).rows_written == 5


def test_write_without_common_columns_raises(staging_target: Target) -> None:
    with pytest.raises(ExportError, match="No column of the rows"):
        odbc.write_staging(pl.DataFrame({"A": [1], "B": ["x"]}), staging_target.settings())
