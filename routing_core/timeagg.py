"""Time statistics of routings and work-order actuals: robust group stats, outliers and lead times.

One module serves the time page, prediction and the ``times`` CLI command. Inputs
follow the validated contract of ``schema``: routing times are minutes, work-order
hours are totals per order. Every function accepts a DataFrame or a LazyFrame.

Statistics used throughout:

- Quantiles (p25, median, p75, p90) use linear interpolation between order
  statistics (numpy's default "linear", pandas' default, DuckDB ``quantile_cont``):
  for n sorted values x[0..n-1] the q-quantile is x[f] + (h - f)(x[f+1] - x[f])
  with h = q(n - 1) and f = floor(h).
- The trimmed mean removes k = floor(0.1 n) values from each end of the sorted
  values and averages the n - 2k values left (as ``scipy.stats.trim_mean(x, 0.1)``).
  For n < 10 nothing is removed and it equals the mean.
- Outliers: a value is an outlier when |x - median| > 3 × scale within its group,
  with scale = 1.4826 × MAD (median absolute deviation from the median). A MAD of 0
  means more than half of the values equal the median, and then the scale falls
  back to 1.2533 × the mean absolute deviation from the median. When that is 0 too,
  all values are equal and none is flagged. Outliers are counted and flagged, never
  dropped from any statistic.
- Null values are ignored by every statistic. A group with no value for a measure
  has n = 0 and null statistics (a null sum, never 0 minutes).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from routing_core.schema import (
    INSIDE_FLAG_VALUES,
    ITEM_CATEGORY_COLUMNS,
    WORK_ORDER_VIEW,
    clean_schema,
)
from routing_core.tables import escape_formula_text

if TYPE_CHECKING:
    from routing_core.validation import Views

logger = logging.getLogger(__name__)

FrameLike = pl.DataFrame | pl.LazyFrame

# --- statistics ----------------------------------------------------------------------

TRIM_FRACTION = 0.1  # share of sorted values removed from EACH end by the trimmed mean
OUTLIER_THRESHOLD = 3.0  # in scaled MADs from the group median
MAD_SCALE = 1.4826  # makes the MAD estimate the standard deviation of normal data
MEAN_AD_SCALE = 1.2533  # sqrt(pi / 2): the same for the mean absolute deviation

# Quantile statistics and their q; all use linear interpolation (module docstring).
QUANTILES = {"median": 0.5, "p25": 0.25, "p75": 0.75, "p90": 0.90}

# Statistics that ``aggregate_times`` can report per measure, in output order.
# The count ``<measure>_n`` is always reported.
STATS = ("sum", "median", "p25", "p75", "p90", "trimmed_mean", "n_outliers")

# --- measures --------------------------------------------------------------------------

# Row-level planned columns added by ``planned_times`` (minutes).
PLANNED_ROW_COLUMNS = {
    "planned_setup_min": "SETUP_TIME",  # per lot
    "planned_run_min_per_piece": "RUN_TIME",  # RUN_TIME / RUN_TIME_QTY
    "planned_queue_min": "QUEUE_TIME",
    "planned_wait_min": "WAIT_TIME",
    "planned_move_min": "MOVE_TIME",
}

# Measure name in aggregated output -> row-level column it summarises.
PLANNED_MEASURES = {
    "planned_setup_min": "planned_setup_min",
    "planned_run_min": "planned_run_min_per_piece",
    "planned_queue_min": "planned_queue_min",
    "planned_wait_min": "planned_wait_min",
    "planned_move_min": "planned_move_min",
}
ACTUAL_MEASURES = {
    "actual_setup_min": "actual_setup_min",
    "actual_run_min": "actual_run_min_per_piece",
}
MEASURES = (*PLANNED_MEASURES, *ACTUAL_MEASURES)

RATIO_COLUMN = "run_ratio_actual_to_planned"

# --- grouping --------------------------------------------------------------------------

ROUTING_GROUP_COLUMNS = ("ITEM_CD", "ROUT_NO", "JOB_CD", "RES_CD", "INSIDE_FLAG")
ITEM_GROUP_COLUMNS = tuple(c for c in ITEM_CATEGORY_COLUMNS if c != "ITEM_CD")
OPERATION_KEY = ["ITEM_CD", "ROUT_NO", "PROC_SEQ"]
_ALL_KEY = "__all__"

CLI_GROUP_COLUMNS = ("RES_CD", "JOB_CD", "ITEM_CD")
CLI_FORMATS = ("csv", "json")


# === filters ===========================================================================


@dataclass(frozen=True)
class TimeFilters:
    """Selection made on the time page. A field left as None (or empty) does not filter.

    Item filters (item_groups on ITEM_GRP1, materials on ITEM_MATERIAL, part_types
    on PART_TYPE) need the item master and apply to routings and work orders by
    ITEM_CD. ``res_cds`` applies to the RES_CD of each routing row and each work
    order. ``inside_flag`` is "Y" (in-house) or "N" (subcontract; 사내/외주 are
    accepted); a work order takes the INSIDE_FLAG of its routing operation
    (ITEM_CD, ROUT_NO, PROC_SEQ). ``report_from``..``report_to`` is an inclusive
    REPORT_DT range and applies to work orders only.
    """

    item_groups: tuple[str, ...] | None = None
    materials: tuple[str, ...] | None = None
    part_types: tuple[str, ...] | None = None
    res_cds: tuple[str, ...] | None = None
    inside_flag: str | None = None
    report_from: date | None = None
    report_to: date | None = None

    def __post_init__(self) -> None:
        for name in ("item_groups", "materials", "part_types", "res_cds"):
            object.__setattr__(self, name, _as_code_tuple(name, getattr(self, name)))

        if self.inside_flag is not None:
            flag = INSIDE_FLAG_VALUES.get(str(self.inside_flag).strip())
            if flag is None:
                raise ValueError(
                    f"Invalid inside_flag {self.inside_flag!r}: use 'Y' (in-house) or 'N' (subcontract)."
                )
            object.__setattr__(self, "inside_flag", flag)

        for name in ("report_from", "report_to"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, date):
                raise ValueError(f"Invalid {name} {value!r}: expected a datetime.date.")
        if self.report_from and self.report_to and self.report_from > self.report_to:
            raise ValueError(
                f"Invalid REPORT_DT range: report_from {self.report_from} is after report_to {self.report_to}."
            )

    @property
    def item_conditions(self) -> dict[str, tuple[str, ...]]:
        """Item-master column -> accepted values, for the item filters that are set."""
        pairs = {
            "ITEM_GRP1": self.item_groups,
            "ITEM_MATERIAL": self.materials,
            "PART_TYPE": self.part_types,
        }
        return {column: values for column, values in pairs.items() if values is not None}


def _as_code_tuple(name: str, values: object) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = (values,)
    if not isinstance(values, Sequence | set | frozenset):
        raise ValueError(f"Invalid {name} {values!r}: expected a sequence of codes.")
    codes = tuple(str(v) for v in values)
    return codes or None


def apply_filters(
    routings: FrameLike,
    work_orders: FrameLike | None = None,
    items: FrameLike | None = None,
    filters: TimeFilters | None = None,
) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """Apply ``filters`` to routings and work orders and return both as LazyFrames.

    Items without an item-master row are dropped when an item filter is set. Work
    orders whose operation has no row in ``routings`` are dropped when
    ``inside_flag`` is set. ``work_orders`` None stays None.

    Raises ValueError when an item filter is set and ``items`` is None.
    """
    routings_lf = _lazy(routings, "routings")
    work_orders_lf = None if work_orders is None else _lazy(work_orders, "work_orders")
    if filters is None:
        return routings_lf, work_orders_lf

    filtered_routings = routings_lf
    filtered_work_orders = work_orders_lf

    item_conditions = filters.item_conditions
    if item_conditions:
        if items is None:
            raise ValueError(
                f"Item filters {sorted(item_conditions)} need the item master: pass items."
            )
        selected_items = (
            _lazy(items, "items")
            .filter(*[pl.col(column).is_in(values) for column, values in item_conditions.items()])
            .select("ITEM_CD")
            .unique()
        )
        filtered_routings = filtered_routings.join(selected_items, on="ITEM_CD", how="semi")
        if filtered_work_orders is not None:
            filtered_work_orders = filtered_work_orders.join(selected_items, on="ITEM_CD", how="semi")

    if filters.res_cds is not None:
        res_condition = pl.col("RES_CD").is_in(filters.res_cds)
        filtered_routings = filtered_routings.filter(res_condition)
        if filtered_work_orders is not None:
            filtered_work_orders = filtered_work_orders.filter(res_condition)

    if filters.inside_flag is not None:
        flag_condition = pl.col("INSIDE_FLAG") == filters.inside_flag
        filtered_routings = filtered_routings.filter(flag_condition)
        if filtered_work_orders is not None:
            # The lookup uses all routing rows, so a work order on another resource
            # than the planned one still finds its operation.
            flagged_operations = routings_lf.filter(flag_condition).select(OPERATION_KEY).unique()
            filtered_work_orders = filtered_work_orders.join(
                flagged_operations, on=OPERATION_KEY, how="semi"
            )

    if filtered_work_orders is not None:
        if filters.report_from is not None:
            filtered_work_orders = filtered_work_orders.filter(pl.col("REPORT_DT") >= filters.report_from)
        if filters.report_to is not None:
            filtered_work_orders = filtered_work_orders.filter(pl.col("REPORT_DT") <= filters.report_to)

    return filtered_routings, filtered_work_orders


# === row-level times ===================================================================


def planned_run_per_piece_expr() -> pl.Expr:
    """Planned run minutes per piece: RUN_TIME / RUN_TIME_QTY.

    A null RUN_TIME_QTY counts as 1 piece. A RUN_TIME_QTY ≤ 0, which validation
    does not let through, gives null rather than an infinite time.
    """
    qty = pl.col("RUN_TIME_QTY").fill_null(1.0)
    return pl.when(qty > 0).then(pl.col("RUN_TIME") / qty)


def planned_times(routings: FrameLike) -> pl.LazyFrame:
    """Add the row-level planned columns of ``PLANNED_ROW_COLUMNS`` to routing rows.

    planned_setup_min (per lot), planned_run_min_per_piece, planned_queue_min,
    planned_wait_min and planned_move_min, all in minutes.
    """
    return _lazy(routings, "routings").with_columns(
        pl.col("SETUP_TIME").cast(pl.Float64).alias("planned_setup_min"),
        planned_run_per_piece_expr().cast(pl.Float64).alias("planned_run_min_per_piece"),
        pl.col("QUEUE_TIME").cast(pl.Float64).alias("planned_queue_min"),
        pl.col("WAIT_TIME").cast(pl.Float64).alias("planned_wait_min"),
        pl.col("MOVE_TIME").cast(pl.Float64).alias("planned_move_min"),
    )


def work_order_actuals(work_orders: FrameLike) -> pl.LazyFrame:
    """Add actual times to work-order rows (one row per reported operation).

    Added columns:

    - good_qty: ORDER_QTY - BAD_QTY, with a null BAD_QTY counted as 0.
    - zero_good_qty: True when good_qty ≤ 0 (zero, or negative when BAD_QTY >
      ORDER_QTY); null when ORDER_QTY is null.
    - actual_run_min_per_piece: MACH_WORKED_HOURS × 60 / good_qty; null when
      good_qty ≤ 0 or unknown (such orders are skipped by every run statistic).
    - actual_setup_min: SETUP_HOURS × 60, per order, whatever the good quantity.
    """
    good_qty = pl.col("ORDER_QTY").cast(pl.Float64) - pl.col("BAD_QTY").cast(pl.Float64).fill_null(0.0)
    return (
        _lazy(work_orders, "work_orders")
        .with_columns(good_qty.alias("good_qty"))
        .with_columns(
            (pl.col("good_qty") <= 0).alias("zero_good_qty"),
            pl.when(pl.col("good_qty") > 0)
            .then(pl.col("MACH_WORKED_HOURS").cast(pl.Float64) * 60.0 / pl.col("good_qty"))
            .alias("actual_run_min_per_piece"),
            (pl.col("SETUP_HOURS").cast(pl.Float64) * 60.0).alias("actual_setup_min"),
        )
    )


def count_zero_good_quantity(work_orders: FrameLike) -> int:
    """Count the work orders whose good quantity (ORDER_QTY - BAD_QTY) is ≤ 0."""
    counted = work_order_actuals(work_orders).select(pl.col("zero_good_qty").sum()).collect()
    return int(counted.item())


# === robust statistics (expressions) ===================================================


def _sorted_quantile(values: pl.Expr, q: float) -> pl.Expr:
    """Linear q-quantile of a sorted list column without nulls; null for an empty list."""
    n = values.list.len().cast(pl.Int64)
    position = (n - 1).cast(pl.Float64) * q
    low = position.floor().cast(pl.Int64)
    high = pl.min_horizontal(low + 1, n - 1)
    low_value = values.list.get(low, null_on_oob=True)
    high_value = values.list.get(high, null_on_oob=True)
    return low_value + (position - low) * (high_value - low_value)


def _sorted_trimmed_mean(values: pl.Expr) -> pl.Expr:
    """Trimmed mean of a sorted list column without nulls; null for an empty list."""
    n = values.list.len().cast(pl.Int64)
    k = (n.cast(pl.Float64) * TRIM_FRACTION).floor().cast(pl.Int64)
    return values.list.slice(k, n - 2 * k).list.mean()


def _absolute_deviations(values: pl.Expr) -> pl.Expr:
    """List of |x - median| for a sorted list column without nulls."""
    return (values - _sorted_quantile(values, 0.5)).list.eval(pl.element().abs())


def _robust_scale(deviations: pl.Expr) -> pl.Expr:
    """Outlier scale of a list of absolute deviations: 1.4826 × MAD, else 1.2533 × mean deviation."""
    mad = deviations.list.median()
    return pl.when(mad > 0).then(MAD_SCALE * mad).otherwise(MEAN_AD_SCALE * deviations.list.mean())


def _outlier_count(deviations: pl.Expr) -> pl.Expr:
    limit = OUTLIER_THRESHOLD * _robust_scale(deviations)
    return (deviations - limit).list.eval(pl.element() > 0).list.sum().cast(pl.Int64)


def _group_stats(
    rows: pl.LazyFrame,
    by: list[str],
    measures: dict[str, tuple[str, Sequence[str]]],
    extra_aggs: Sequence[pl.Expr] = (),
) -> pl.LazyFrame:
    """Compute ``M_n`` and ``M_<stat>`` per group for each measure M -> (row column, stats).

    Order statistics and outliers come from one sorted list of the non-null values
    per group and measure, so each group is sorted once per measure, whatever the
    number of statistics. ``by`` must not be empty.
    """
    aggs = list(extra_aggs)
    value_lists: list[str] = []
    deviation_lists: dict[str, pl.Expr] = {}
    finish: list[pl.Expr] = []
    for measure, (row_column, stats) in measures.items():
        x = pl.col(row_column)
        n = x.count()
        aggs.append(n.cast(pl.Int64).alias(f"{measure}_n"))
        if "sum" in stats:
            aggs.append(pl.when(n > 0).then(x.sum()).alias(f"{measure}_sum"))
        if not any(stat != "sum" for stat in stats):
            continue

        values_column = f"__{measure}_values"
        deviations_column = f"__{measure}_deviations"
        values = pl.col(values_column)
        aggs.append(x.drop_nulls().alias(values_column))
        value_lists.append(values_column)
        for stat in stats:
            name = f"{measure}_{stat}"
            if stat in QUANTILES:
                finish.append(_sorted_quantile(values, QUANTILES[stat]).alias(name))
            elif stat == "trimmed_mean":
                finish.append(_sorted_trimmed_mean(values).alias(name))
            elif stat == "n_outliers":
                deviation_lists[deviations_column] = _absolute_deviations(values).alias(deviations_column)
                finish.append(_outlier_count(pl.col(deviations_column)).alias(name))

    grouped = rows.group_by(by).agg(aggs)
    if value_lists:
        grouped = grouped.with_columns(pl.col(value_lists).list.sort())
        if deviation_lists:
            grouped = grouped.with_columns(list(deviation_lists.values()))
        grouped = grouped.with_columns(finish).drop(*value_lists, *deviation_lists)
    return grouped


def flag_outliers(frame: FrameLike, column: str, by: Sequence[str] | str = ("RES_CD",)) -> pl.DataFrame:
    """Return every row of ``frame`` with ``robust_z`` and ``is_outlier`` for ``column`` within ``by``.

    robust_z = (x - group median) / scale, with the scale of the module docstring;
    null when x is null or the scale is 0. is_outlier is True when |x - median| >
    3 × scale, False for other non-null values and null when x is null. The flags
    agree with ``M_n_outliers`` of ``aggregate_times``. ``by`` empty treats the
    whole frame as one group. No row is removed and the row order is kept.

    Use ``planned_times`` or ``work_order_actuals`` first to flag a derived column
    such as planned_run_min_per_piece or actual_run_min_per_piece.
    """
    lf = _lazy(frame, "frame")
    by_columns = [by] if isinstance(by, str) else list(by)
    available = lf.collect_schema().names()
    missing = [c for c in [column, *by_columns] if c not in available]
    if missing:
        raise ValueError(f"Columns {missing} not found in the frame; available: {available}.")

    keys = by_columns or [_ALL_KEY]
    if not by_columns:
        lf = lf.with_columns(pl.lit(True).alias(_ALL_KEY))
    x = pl.col(column).cast(pl.Float64)
    values = pl.col("__values")
    group_scales = (
        lf.group_by(keys)
        .agg(x.drop_nulls().alias("__values"))
        .with_columns(values.list.sort())
        .with_columns(_sorted_quantile(values, 0.5).alias("__median"), _absolute_deviations(values).alias("__deviations"))
        .select(*keys, "__median", _robust_scale(pl.col("__deviations")).alias("__scale"))
    )

    median, scale = pl.col("__median"), pl.col("__scale")
    flagged = (
        lf.join(group_scales, on=keys, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(
            pl.when(scale > 0).then((x - median) / scale).alias("robust_z"),
            ((x - median).abs() > OUTLIER_THRESHOLD * scale).alias("is_outlier"),
        )
        .drop("__median", "__scale")
    )
    if not by_columns:
        flagged = flagged.drop(_ALL_KEY)
    return flagged.collect()


# === aggregation =======================================================================


def aggregate_schema(by: Sequence[str] | str = ("RES_CD",), stats: Sequence[str] = STATS) -> pl.Schema:
    """Return the column schema of ``aggregate_times`` for ``by`` and ``stats``."""
    by_columns = _check_by(by, items_given=True)
    stats = _check_stats(stats)
    columns: dict[str, pl.DataType] = {c: pl.String() for c in by_columns}
    columns.update(n_operations=pl.Int64(), n_orders=pl.Int64(), n_zero_good_qty=pl.Int64())
    for measure in MEASURES:
        columns[f"{measure}_n"] = pl.Int64()
        for stat in stats:
            columns[f"{measure}_{stat}"] = pl.Int64() if stat == "n_outliers" else pl.Float64()
    columns[RATIO_COLUMN] = pl.Float64()
    return pl.Schema(columns)


def aggregate_times(
    routings: FrameLike,
    work_orders: FrameLike | None = None,
    items: FrameLike | None = None,
    by: Sequence[str] | str = ("RES_CD",),
    filters: TimeFilters | None = None,
    *,
    stats: Sequence[str] = STATS,
) -> pl.DataFrame:
    """Summarise planned and actual times per group: one row per group, sorted by ``by``.

    ``by`` is any combination (possibly empty, giving one overall row) of ITEM_CD,
    ROUT_NO, JOB_CD, RES_CD, INSIDE_FLAG and, when ``items`` is given, item-master
    category columns such as ITEM_GRP1, ITEM_MATERIAL or PART_TYPE. ``stats`` picks
    statistics from ``STATS`` (default: all). ``filters`` is applied first
    (see ``apply_filters``).

    Planned rows are the routing rows. Actual rows are the work orders, grouped by
    their own ITEM_CD, ROUT_NO, JOB_CD and RES_CD (the resource that really did the
    work). A work order takes INSIDE_FLAG from its routing operation (ITEM_CD,
    ROUT_NO, PROC_SEQ) in ``routings``, null when the operation is not there, and
    item attributes from ``items``. A group may have planned rows, actual rows or both.

    Output columns, in this order (``aggregate_schema`` returns them with types):

    - the ``by`` columns (String);
    - n_operations: routing rows in the group; n_orders: work orders in the group;
      n_zero_good_qty: work orders skipped for run time because ORDER_QTY - BAD_QTY ≤ 0
      (all Int64, 0 when the group has none);
    - for each measure M of ``MEASURES``:
      planned_setup_min (SETUP_TIME, per lot), planned_run_min (RUN_TIME /
      RUN_TIME_QTY, per piece), planned_queue_min, planned_wait_min,
      planned_move_min, actual_setup_min (SETUP_HOURS × 60, per order) and
      actual_run_min (MACH_WORKED_HOURS × 60 / good quantity, per piece):
      ``M_n`` (Int64, non-null values) then, for each requested stat, ``M_sum``,
      ``M_median``, ``M_p25``, ``M_p75``, ``M_p90``, ``M_trimmed_mean`` (Float64,
      minutes, null when M_n = 0) and ``M_n_outliers`` (Int64);
    - run_ratio_actual_to_planned: actual_run_min median / planned_run_min median,
      null when either is null or the planned median is 0.

    Quantile interpolation, trimmed mean and outlier rule are defined in the module
    docstring. An empty selection returns an empty frame with the full schema. With
    ``work_orders`` None, the actual columns are there with n = 0 and null stats.

    Raises ValueError for an unknown ``by`` column or stat, or an item column in
    ``by`` or an item filter without ``items``.
    """
    started = time.perf_counter()
    by_columns = _check_by(by, items_given=items is not None)
    stats = _check_stats(stats)
    schema = aggregate_schema(by_columns, stats)
    if filters is not None and filters.item_conditions and items is None:
        raise ValueError(f"Item filters {sorted(filters.item_conditions)} need the item master: pass items.")

    routings_lf = _lazy(routings, "routings")
    if work_orders is None:
        work_orders = pl.LazyFrame(schema=clean_schema(WORK_ORDER_VIEW))
    selected_routings, selected_work_orders = apply_filters(routings_lf, work_orders, items, filters)
    assert selected_work_orders is not None

    item_columns = [c for c in by_columns if c in ITEM_GROUP_COLUMNS]
    item_lookup = None
    if item_columns:
        assert items is not None
        item_lookup = (
            _lazy(items, "items")
            .select("ITEM_CD", *item_columns)
            .unique(subset="ITEM_CD", keep="first", maintain_order=True)
        )

    planned_rows = planned_times(selected_routings)
    actual_rows = work_order_actuals(selected_work_orders)
    if "INSIDE_FLAG" in by_columns:
        flag_lookup = routings_lf.select(*OPERATION_KEY, "INSIDE_FLAG").unique(
            subset=OPERATION_KEY, keep="first", maintain_order=True
        )
        actual_rows = actual_rows.join(flag_lookup, on=OPERATION_KEY, how="left")
    if item_lookup is not None:
        planned_rows = planned_rows.join(item_lookup, on="ITEM_CD", how="left")
        actual_rows = actual_rows.join(item_lookup, on="ITEM_CD", how="left")

    # An empty ``by`` groups everything under one constant key, dropped at the end.
    keys = by_columns or [_ALL_KEY]
    if not by_columns:
        planned_rows = planned_rows.with_columns(pl.lit(True).alias(_ALL_KEY))
        actual_rows = actual_rows.with_columns(pl.lit(True).alias(_ALL_KEY))

    # The run medians are needed for the ratio even when the caller did not ask for them.
    run_stats = stats if "median" in stats else (*stats, "median")

    def measure_stats(measures: dict[str, str]) -> dict[str, tuple[str, Sequence[str]]]:
        return {
            measure: (row_column, run_stats if measure.endswith("_run_min") else stats)
            for measure, row_column in measures.items()
        }

    planned_stats = _group_stats(
        planned_rows, keys, measure_stats(PLANNED_MEASURES),
        extra_aggs=[pl.len().cast(pl.Int64).alias("n_operations")],
    )
    actual_stats = _group_stats(
        actual_rows, keys, measure_stats(ACTUAL_MEASURES),
        extra_aggs=[
            pl.len().cast(pl.Int64).alias("n_orders"),
            pl.col("zero_good_qty").sum().cast(pl.Int64).alias("n_zero_good_qty"),
        ],
    )
    combined = planned_stats.join(actual_stats, on=keys, how="full", coalesce=True, nulls_equal=True)

    count_columns = [c for c, dtype in schema.items() if dtype == pl.Int64()]
    planned_median = pl.col("planned_run_min_median")
    result = (
        combined.with_columns(pl.col(count_columns).fill_null(0))
        .with_columns(
            pl.when(planned_median != 0)
            .then(pl.col("actual_run_min_median") / planned_median)
            .alias(RATIO_COLUMN)
        )
        .select([pl.col(c).cast(dtype) for c, dtype in schema.items()])
    )
    if by_columns:
        result = result.sort(by_columns, nulls_last=True)
    frame = result.collect()

    logger.debug(
        "aggregated times by %s: %d groups in %.3f s", by_columns, frame.height, time.perf_counter() - started
    )
    return frame


def operation_actuals(work_orders: FrameLike, min_orders: int = 3) -> pl.DataFrame:
    """Summarise work-order actuals per operation (ITEM_CD, PROC_SEQ, JOB_CD) for prediction.

    Columns:

    - ITEM_CD, PROC_SEQ, JOB_CD; n_orders (work orders);
    - n_actual (orders with a defined run time per piece); actual_run_min,
      actual_run_min_p25, actual_run_min_p75 (median and quartiles of the run
      minutes per piece);
    - n_actual_setup (orders with SETUP_HOURS); actual_setup_min,
      actual_setup_min_p25, actual_setup_min_p75 (median and quartiles of the
      setup minutes per order);
    - use_actuals: n_actual ≥ ``min_orders``, so prediction prefers actuals over
      planned times for that operation.

    Quantiles are linear, and stats are null when their count is 0. Every
    operation with a work order is returned, whatever its count. Sorted by
    ITEM_CD, PROC_SEQ, JOB_CD.
    """
    if isinstance(min_orders, bool) or not isinstance(min_orders, int) or min_orders < 1:
        raise ValueError(f"Invalid min_orders {min_orders!r}: expected an integer ≥ 1.")

    keys = ["ITEM_CD", "PROC_SEQ", "JOB_CD"]
    quartiles = ("median", "p25", "p75")
    stats = _group_stats(
        work_order_actuals(work_orders),
        keys,
        {measure: (row_column, quartiles) for measure, row_column in ACTUAL_MEASURES.items()},
        extra_aggs=[pl.len().cast(pl.Int64).alias("n_orders")],
    )
    return (
        stats.select(
            *keys,
            "n_orders",
            pl.col("actual_run_min_n").alias("n_actual"),
            pl.col("actual_run_min_median").alias("actual_run_min"),
            "actual_run_min_p25",
            "actual_run_min_p75",
            pl.col("actual_setup_min_n").alias("n_actual_setup"),
            pl.col("actual_setup_min_median").alias("actual_setup_min"),
            "actual_setup_min_p25",
            "actual_setup_min_p75",
        )
        .with_columns((pl.col("n_actual") >= min_orders).alias("use_actuals"))
        .sort(keys, nulls_last=True)
        .collect()
    )


# === lead time =========================================================================

# Maximum lot size in pieces. Larger lot sizes are rejected as typing errors, and a
# lot of 1e308 pieces would overflow the lead time to infinity.
MAX_LOT_SIZE = 1_000_000


def lead_time_expr(lot_size: float = 1.0) -> pl.Expr:
    """Lead time in minutes of one operation for a lot of ``lot_size`` pieces.

    QUEUE_TIME + SETUP_TIME + RUN_TIME × lot_size / RUN_TIME_QTY + WAIT_TIME +
    MOVE_TIME, with null parts counted as 0; null when all five are null.
    Aliased ``lead_time_min``.
    """
    _check_lot_size(lot_size)
    parts = _lead_time_parts(lot_size)
    all_null = pl.all_horizontal([part.is_null() for part in parts])
    return pl.when(~all_null).then(pl.sum_horizontal(parts)).alias("lead_time_min")


def _lead_time_parts(lot_size: float) -> list[pl.Expr]:
    return [
        pl.col("QUEUE_TIME").cast(pl.Float64),
        pl.col("SETUP_TIME").cast(pl.Float64),
        planned_run_per_piece_expr().cast(pl.Float64) * lot_size,
        pl.col("WAIT_TIME").cast(pl.Float64),
        pl.col("MOVE_TIME").cast(pl.Float64),
    ]


def lead_time_min(routings: FrameLike, lot_size: float = 1.0) -> pl.DataFrame:
    """Sum planned times per routing (ITEM_CD, ROUT_NO) for a lot of ``lot_size`` pieces.

    Columns: ITEM_CD, ROUT_NO, n_operations (Int64); planned_queue_min,
    planned_setup_min, planned_run_min (Σ RUN_TIME × lot_size / RUN_TIME_QTY),
    planned_wait_min, planned_move_min; lead_time_min (their serial sum). Each
    sum counts nulls as 0 and is null only when every value it adds is null, so
    lead_time_min is null only when all times of the routing are null. Sorted by
    ITEM_CD, ROUT_NO.
    """
    _check_lot_size(lot_size)
    parts = _lead_time_parts(lot_size)
    names = ["planned_queue_min", "planned_setup_min", "planned_run_min", "planned_wait_min", "planned_move_min"]

    # Bit i is set when part i has a non-null value in the routing, so one aggregation replaces five counts.
    # The lead time is the sum of the part sums, null when no bit is set.
    present = pl.sum_horizontal(
        [part.is_not_null().cast(pl.UInt8) * (1 << bit) for bit, part in enumerate(parts)]
    ).cast(pl.UInt8)
    mask = pl.col("__present")

    keys = ["ITEM_CD", "ROUT_NO"]
    return (
        _lazy(routings, "routings")
        .group_by(keys)
        .agg(
            pl.len().cast(pl.Int64).alias("n_operations"),
            *[part.sum().alias(name) for part, name in zip(parts, names, strict=True)],
            present.bitwise_or().alias("__present"),
        )
        .select(
            *keys,
            "n_operations",
            *[pl.when((mask & (1 << bit)) != 0).then(pl.col(name)).alias(name) for bit, name in enumerate(names)],
            pl.when(mask != 0).then(pl.sum_horizontal(names)).alias("lead_time_min"),
        )
        .sort(keys, nulls_last=True)
        .collect()
    )


# === CLI ===============================================================================


def times_table(views: Views, by: str, fmt: str) -> str:
    """Render ``aggregate_times`` over the active routings as CSV or JSON text.

    ``by`` is RES_CD, JOB_CD or ITEM_CD; ``fmt`` is "csv" (header line, no BOM) or
    "json" (a list of records). Non-finite numbers are written as empty CSV
    cells or JSON null. CSV text cells that a spreadsheet would run as a
    formula get a leading apostrophe (``tables.escape_formula_text``).
    """
    if by not in CLI_GROUP_COLUMNS:
        raise ValueError(f"Invalid --by {by!r}: use one of {', '.join(CLI_GROUP_COLUMNS)}.")
    if fmt not in CLI_FORMATS:
        raise ValueError(f"Invalid --format {fmt!r}: use one of {', '.join(CLI_FORMATS)}.")

    table = aggregate_times(views.active_routings, views.work_orders, views.items, by=[by])
    float_columns = [c for c, dtype in table.schema.items() if dtype.is_float()]
    table = table.with_columns(
        [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in float_columns]
    )
    if fmt == "csv":
        return escape_formula_text(table).write_csv()
    return table.write_json()


# === helpers ===========================================================================


def _lazy(frame: object, name: str) -> pl.LazyFrame:
    if isinstance(frame, pl.LazyFrame):
        return frame
    if isinstance(frame, pl.DataFrame):
        return frame.lazy()
    raise TypeError(f"{name} must be a polars DataFrame or LazyFrame, not {type(frame).__name__}.")


def _check_by(by: Sequence[str] | str, items_given: bool) -> list[str]:
    by_columns = [by] if isinstance(by, str) else list(by)
    allowed = (*ROUTING_GROUP_COLUMNS, *ITEM_GROUP_COLUMNS)
    unknown = [c for c in by_columns if c not in allowed]
    if unknown:
        raise ValueError(f"Invalid group columns {unknown}: use columns of {list(allowed)}.")
    if len(set(by_columns)) != len(by_columns):
        raise ValueError(f"Invalid group columns {by_columns}: a column is repeated.")
    item_columns = [c for c in by_columns if c in ITEM_GROUP_COLUMNS]
    if item_columns and not items_given:
        raise ValueError(f"Group columns {item_columns} come from the item master: pass items.")
    return by_columns


def _check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    requested = (stats,) if isinstance(stats, str) else tuple(stats)
    unknown = [s for s in requested if s not in STATS]
    if unknown:
        raise ValueError(f"Invalid stats {unknown}: use names of {list(STATS)}.")
    return tuple(s for s in STATS if s in requested)


def _check_lot_size(lot_size: float) -> None:
    if isinstance(lot_size, bool) or not isinstance(lot_size, int | float) or not math.isfinite(lot_size) or lot_size <= 0:
        raise ValueError(f"Invalid lot_size {lot_size!r}: expected a positive number of pieces.")
    if lot_size > MAX_LOT_SIZE:
        raise ValueError(f"Invalid lot_size {lot_size!r}: expected at most {MAX_LOT_SIZE:,} pieces.")
