"""End-to-end acceptance over real ODBC drivers: ERP views → training → prediction → staging table.

For each driver (SQLite ODBC ``SQLite3`` on a database file, psqlODBC
``PostgreSQL Unicode`` on a loopback server started for the session) the test:

1. creates the three ERP views and fills them, with parameterised executemany,
   from ``sample.build_sample(400, seed=7)``;
2. trains a model with ``data_source="odbc"``, so the views are read by
   ``odbc.read_views_odbc`` and checked by ``validation.validate_views``;
3. predicts the routing of an item that has one, with the bundle loaded from disk;
4. turns the top candidate into routing detail rows for a new item with a Hangul
   code and operation name, writes them into a staging table and reads them back
   with a plain SELECT.

The two databases store the views in two forms. SQLite gets the views as an ERP
CSV export: every routing value text, the text ``NULL`` in empty cells (item
and work-order numbers are REAL).
PostgreSQL gets typed columns as the ERP keeps them (integers, decimals,
timestamps, real NULLs) in schema ``dbo``. Its routing view reads an ERP table
that spells the in-house flag INSIDE_FLG, as the ERP's own table does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from routing_core import export, odbc, schema
from routing_core.config import Settings, load_settings
from routing_core.predict import PredictionOptions, PredictionResult, Predictor
from routing_core.registry import ModelBundle, load_bundle
from routing_core.sample import AS_OF_DATE, SampleFrames, build_sample
from routing_core.train import TrainResult, train_and_save
from routing_core.validation import RawViews, data_fingerprint, validate_views

from tests.odbc_servers import (
    POSTGRES_DRIVER, SQLITE_DRIVER, require_driver, require_pyodbc, skip_or_fail, sqlite_connection_string,
)

DRIVERS = ["sqlite", "postgresql"]
N_ITEMS = 400
SEED = 7

NEW_ITEM_CD = "NEW-품목-001"
NEW_ROUT_NO = "01"
HANGUL_JOB_NM = "연삭 (정밀)"
VALID_FROM = date(2026, 12, 1)

# Routing columns stored typed in PostgreSQL; every other routing column stays text.
_ROUTING_INTEGERS = ["PROC_SEQ"]
_ROUTING_DECIMALS = [*schema.ROUTING_TIME_COLUMNS, "RUN_TIME_QTY", "MFG_LT"]
_ROUTING_TIMESTAMPS = ["VALID_FROM_DT", "VALID_TO_DT"]


@pytest.fixture(scope="module")
def sample() -> SampleFrames:
    """The generated ERP extract, built once for both drivers."""
    return build_sample(n_items=N_ITEMS, seed=SEED)


# --- the ERP databases -----------------------------------------------------------------


@dataclass(frozen=True)
class Erp:
    """One ERP database reached through one ODBC driver, and the object names configured for it."""

    dialect: Literal["sqlite", "postgresql"]
    connection_string: str
    item_view: str
    routing_view: str
    work_order_view: str
    staging_table: str

    def connect(self, autocommit: bool = False) -> Any:
        pyodbc = require_pyodbc()
        return pyodbc.connect(self.connection_string, autocommit=autocommit)

    def quote(self, name: str) -> str:
        """Quote a column name, so PostgreSQL keeps the ERP spelling (SQLite keeps it anyway)."""
        return f'"{name}"'


def _sql_type(dtype: pl.DataType, dialect: str, column: str) -> str:
    """Return the column type that stores one frame column."""
    if dtype == pl.Int64:
        return "integer"
    if dtype == pl.Float64:
        if column in _ROUTING_DECIMALS:
            return "decimal(18,4)"
        return "real" if dialect == "sqlite" else "double precision"
    if dtype == pl.Datetime:
        return "timestamp"
    return "text" if dialect == "sqlite" else "varchar(200)"


def _create_and_fill(cursor: Any, erp: Erp, table: str, frame: pl.DataFrame, not_null: tuple[str, ...] = ()) -> None:
    """Create ``table`` with the frame's columns (ERP names, quoted) and insert every row with executemany."""
    columns = ", ".join(
        f"{erp.quote(name)} {_sql_type(dtype, erp.dialect, name)}{' NOT NULL' if name in not_null else ''}"
        for name, dtype in frame.schema.items()
    )
    cursor.execute(f"CREATE TABLE {table} ({columns})")
    names = ", ".join(erp.quote(name) for name in frame.columns)
    marks = ", ".join("?" * frame.width)
    cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", frame.rows())


def _typed_routings(routings: pl.DataFrame) -> pl.DataFrame:
    """Return the text routing view with typed numbers and timestamps, and NULL for the null markers.

    Casts are strict, so a value that is neither a null marker nor a number or
    date fails here instead of turning into a silent NULL.
    """
    def text(column: str) -> pl.Expr:
        value = pl.col(column).str.strip_chars()
        return pl.when(value.is_in(sorted(schema.NULL_MARKERS))).then(None).otherwise(value).alias(column)

    return routings.with_columns(
        *[text(c).cast(pl.Int64, strict=True) for c in _ROUTING_INTEGERS],
        *[text(c).cast(pl.Float64, strict=True) for c in _ROUTING_DECIMALS],
        *[text(c).str.strptime(pl.Datetime("ms"), "%Y-%m-%d %H:%M:%S%.f", strict=True) for c in _ROUTING_TIMESTAMPS],
    )


def _load_views(erp: Erp, sample: SampleFrames) -> None:
    """Create the three views of ``erp`` and fill them from the sample in one transaction."""
    work_orders = sample.work_orders.with_columns(pl.col(pl.Datetime).cast(pl.Datetime("us")))
    connection = erp.connect()
    try:
        cursor = connection.cursor()
        _create_and_fill(cursor, erp, erp.item_view, sample.items, not_null=("ITEM_CD",))
        if erp.dialect == "sqlite":
            _create_and_fill(cursor, erp, erp.routing_view, sample.routings)
        else:
            # The ERP table spells INSIDE_FLG; the configured view exposes the table as it is.
            detail = _typed_routings(sample.routings).rename({"INSIDE_FLAG": "INSIDE_FLG"})
            _create_and_fill(cursor, erp, "dbo.P_BOP_PROC_DETAIL", detail, not_null=("ITEM_CD", "PROC_SEQ"))
            cursor.execute(f"CREATE VIEW {erp.routing_view} AS SELECT * FROM dbo.P_BOP_PROC_DETAIL")
        _create_and_fill(cursor, erp, erp.work_order_view, work_orders)
        cursor.execute(odbc.create_staging_table_sql(erp.dialect, erp.staging_table))
        connection.commit()
    finally:
        connection.close()


def _erp(driver: str, request: pytest.FixtureRequest, folder: Path) -> Erp:
    """Return the database of ``driver``, empty; skip or fail when the driver or server is missing."""
    if driver == "sqlite":
        require_driver(SQLITE_DRIVER)
        return Erp("sqlite", sqlite_connection_string(folder / "erp.db"),
                   "BI_ITEM_INFO_VIEW", "BI_ROUTING_VIEW", "BI_WORK_ORDER_RESULTS", "ROUTING_STAGING")
    require_driver(POSTGRES_DRIVER)
    server = request.getfixturevalue("postgres_server")
    database = "erp_end_to_end"
    server.psql(f"DROP DATABASE IF EXISTS {database}", database="postgres")
    server.psql(f"CREATE DATABASE {database} ENCODING 'UTF8' TEMPLATE template0", database="postgres")
    server.psql("CREATE SCHEMA dbo", database=database)
    return Erp("postgresql", server.connection_string(database),
               "dbo.BI_ITEM_INFO_VIEW", "dbo.BI_ROUTING_VIEW", "dbo.BI_WORK_ORDER_RESULTS", "dbo.ROUTING_STAGING")


# --- training and prediction -----------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A model trained from one ERP database through ODBC, and what it was trained from."""

    erp: Erp
    settings: Settings
    result: TrainResult
    bundle: ModelBundle
    sample: SampleFrames


@pytest.fixture(scope="module", params=DRIVERS)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample: SampleFrames) -> Iterator[Trained]:
    """Fill the driver's ERP database from the sample, train from it over ODBC and load the saved bundle."""
    folder = tmp_path_factory.mktemp(f"odbc-e2e-{request.param}")
    erp = _erp(str(request.param), request, folder)
    _load_views(erp, sample)

    settings = load_settings(
        data_source="odbc",
        odbc_connection_string=erp.connection_string,
        item_view=erp.item_view,
        routing_view=erp.routing_view,
        work_order_view=erp.work_order_view,
        staging_table=erp.staging_table,
        model_dir=folder / "models",
        data_dir=folder / "unused-data",
        reference_date=AS_OF_DATE,
    )
    result = train_and_save(settings)
    yield Trained(erp, settings, result, load_bundle(settings.model_dir), sample)


def _routed_item(bundle: ModelBundle) -> str:
    """Return the first indexed item, in code order, whose code is plain ASCII and which has a routing."""
    return (
        bundle.index_items.filter(pl.col("ITEM_CD").str.contains(r"^[A-Z0-9-]+$"))
        .get_column("ITEM_CD").sort().item(0)
    )


def _predict(trained: Trained, item_cd: str) -> PredictionResult:
    predictor = Predictor(trained.bundle)
    return predictor.predict_items([item_cd], PredictionOptions.from_settings(trained.settings))


# --- the acceptance tests ----------------------------------------------------------------


def test_odbc_training_loses_no_values(trained: Trained) -> None:
    """The views read over ODBC validate to exactly what the sample frames validate to."""
    raw = RawViews(items=trained.sample.items, routings=trained.sample.routings, work_orders=trained.sample.work_orders)
    expected_views, _ = validate_views(raw, reference_date=AS_OF_DATE)

    assert trained.result.promoted
    assert trained.bundle.version == trained.result.version
    assert trained.bundle.manifest["source"].startswith("ODBC views")
    assert trained.result.n_items == expected_views.items.height
    assert trained.result.n_indexed_items == expected_views.active_routings.select("ITEM_CD").n_unique()
    assert trained.result.data_fingerprint == data_fingerprint(expected_views)


def test_readers_agree_on_views(trained: Trained) -> None:
    """arrow-odbc (the default) and pyodbc read the same values, floats to the last digit."""
    try:
        import arrow_odbc  # noqa: F401
    except (ImportError, OSError) as exc:
        skip_or_fail(f"arrow-odbc cannot be imported ({exc}): pip install -r requirements.txt")
    by_arrow = odbc.read_views_odbc(trained.settings, engine="arrow-odbc")
    by_pyodbc = odbc.read_views_odbc(trained.settings, engine="pyodbc")

    assert_frame_equal(by_arrow.items, by_pyodbc.items)
    assert_frame_equal(by_arrow.routings, by_pyodbc.routings)
    assert_frame_equal(by_arrow.work_orders, by_pyodbc.work_orders)
    assert by_arrow.items.get_column("OUTDIAMETER").dtype == pl.Float64


def test_inside_flg_alias_reaches_model(trained: Trained) -> None:
    """INSIDE_FLAG reaches the model whether the source spells it INSIDE_FLAG (SQLite) or INSIDE_FLG (PostgreSQL)."""
    values = trained.bundle.routings.get_column("INSIDE_FLAG")
    assert values.null_count() == 0
    assert set(values.unique().to_list()) == {"Y", "N"}


def test_prediction_excludes_own_routing(trained: Trained) -> None:
    item_cd = _routed_item(trained.bundle)
    result = _predict(trained, item_cd)

    assert result.candidates.height > 0
    assert result.candidates.get_column("rank").min() == 1
    assert result.operations.height > 0
    support = result.support.get_column("item_cd").to_list()
    assert support, "the candidates name no supporting items"
    assert item_cd not in support


def _export_batch(trained: Trained) -> export.ExportBatch:
    """Return the top candidate of a routed item as export rows of a new item with Hangul text."""
    result = _predict(trained, _routed_item(trained.bundle))
    top = result.candidates.filter(pl.col("rank") == 1).get_column("candidate_id").item()
    operations = export.operations_from_result(result, 0, top).with_columns(pl.lit(HANGUL_JOB_NM).alias("JOB_NM"))
    routing = export.BasketRouting(item_cd=NEW_ITEM_CD, rout_no=NEW_ROUT_NO, operations=operations, candidate_id=top)
    return export.build_export([routing], valid_from=VALID_FROM)


def _python_value(value: Any, dtype: pl.DataType, decimals_as_text: bool) -> Any:
    """Return a value read back through pyodbc in the Python type of the export column.

    The SQLite ODBC driver declares decimal columns as SQL_VARCHAR, so pyodbc
    returns their values as text. ``decimals_as_text`` accepts that, and
    ``_assert_sqlite_storage`` checks that SQLite stores them as numbers.
    """
    if value is None:
        return None
    if dtype == pl.Float64:
        number_types = (float, int, Decimal, str) if decimals_as_text else (float, int, Decimal)
        assert isinstance(value, number_types), f"number came back as {type(value).__name__}: {value!r}"
        return float(value)
    if dtype == pl.Int64:
        assert isinstance(value, int), f"PROC_SEQ came back as {type(value).__name__}: {value!r}"
        return value
    if dtype == pl.Date:
        assert isinstance(value, date), f"date came back as {type(value).__name__}: {value!r}"
        return value.date() if isinstance(value, datetime) else value
    assert isinstance(value, str), f"text came back as {type(value).__name__}: {value!r}"
    return value


def _assert_sqlite_storage(erp: Erp, rows: int) -> None:
    """Check that SQLite stores the numbers as numbers and the dates as ISO text.

    SQLite keeps any value in any column, and its ODBC driver returns decimal
    columns as text, so the storage classes are read with the sqlite3 module.
    """
    database = erp.connection_string.split("Database=", 1)[1]
    numbers = [c for c, dtype in export.EXPORT_SCHEMA.items() if dtype in (pl.Float64, pl.Int64)]
    dates = [c for c, dtype in export.EXPORT_SCHEMA.items() if dtype == pl.Date]
    connection = sqlite3.connect(database)
    try:
        classes = connection.execute(
            "SELECT " + ", ".join(f'typeof("{c}")' for c in numbers) + f" FROM {erp.staging_table}"
        ).fetchall()
        date_texts = connection.execute(
            "SELECT " + ", ".join(f'"{c}"' for c in dates) + f" FROM {erp.staging_table}"
        ).fetchall()
    finally:
        connection.close()
    assert len(classes) == rows
    assert {c for row in classes for c in row} <= {"integer", "real", "null"}
    assert {v for row in date_texts for v in row} == {VALID_FROM.isoformat(), "2999-12-31"}


def test_staging_round_trip_is_identical(trained: Trained) -> None:
    batch = _export_batch(trained)
    assert batch.ok, batch.problems.to_dicts()

    written = export.write_to_erp(batch, trained.settings)
    assert written.rows_written > 0
    assert written.rows_written == batch.rows.height
    assert written.routings_written == 1

    columns = ", ".join(f'"{c}"' for c in odbc.ERP_EXPORT_COLUMNS)
    connection = trained.erp.connect(autocommit=True)
    try:
        cursor = connection.cursor()
        cursor.execute(f'SELECT {columns} FROM {trained.erp.staging_table} ORDER BY "PROC_SEQ"')
        fetched = cursor.fetchall()
    finally:
        connection.close()

    dtypes = export.EXPORT_SCHEMA
    decimals_as_text = trained.erp.dialect == "sqlite"
    read_back = [
        {name: _python_value(value, dtypes[name], decimals_as_text) for name, value in zip(odbc.ERP_EXPORT_COLUMNS, row)}
        for row in fetched
    ]
    expected = batch.rows.sort("PROC_SEQ").to_dicts()

    assert len(read_back) == written.rows_written
    assert [row["ITEM_CD"] for row in read_back] == [NEW_ITEM_CD] * written.rows_written
    assert [row["JOB_NM"] for row in read_back] == [HANGUL_JOB_NM] * written.rows_written
    assert [row["VALID_FROM_DT"] for row in read_back] == [VALID_FROM] * written.rows_written
    for position, (got, want) in enumerate(zip(read_back, expected)):
        for name in odbc.ERP_EXPORT_COLUMNS:
            if dtypes[name] == pl.Float64 and want[name] is not None:
                assert got[name] == pytest.approx(want[name], rel=0, abs=1e-9), (position, name)
            else:
                assert got[name] == want[name], (position, name, got[name], want[name])
    if trained.erp.dialect == "sqlite":
        _assert_sqlite_storage(trained.erp, written.rows_written)
