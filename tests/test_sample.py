"""Tests of the sample ERP extract generator: files, determinism, plant rules and habits."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from routing_core.sample import (
    AS_OF_DATE,
    ITEM_GRP1_KINDS,
    JOBS,
    REPORT_FILE,
    build_sample,
    generate_sample,
    routing_rule,
)
from routing_core.schema import (
    ITEM_COLUMNS,
    ITEM_VIEW,
    NULL_MARKERS,
    ROUTING_COLUMNS,
    ROUTING_VIEW,
    TIME_UNIT_TO_MINUTES,
    WORK_ORDER_COLUMNS,
    WORK_ORDER_VIEW,
)

N_ITEMS = 2000


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(N_ITEMS, out, seed=7)
    return out


@pytest.fixture(scope="module")
def report(sample_dir: Path) -> dict:
    return json.loads((sample_dir / REPORT_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def items(sample_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(sample_dir / f"{ITEM_VIEW}.parquet")


@pytest.fixture(scope="module")
def routings(sample_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(sample_dir / f"{ROUTING_VIEW}.parquet")


@pytest.fixture(scope="module")
def work_orders(sample_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(sample_dir / f"{WORK_ORDER_VIEW}.parquet")


def _clean_code(column: str) -> pl.Expr:
    return pl.col(column).str.normalize("NFKC").str.strip_chars()


def _missing(column: str) -> pl.Expr:
    return pl.col(column).is_null() | pl.col(column).cast(pl.String).str.strip_chars().is_in(list(NULL_MARKERS))


@pytest.fixture(scope="module")
def active_sequences(routings: pl.DataFrame) -> pl.DataFrame:
    """Return ITEM_CD → JOB_CD list of the active routing, chosen as validation does.

    Duplicates dropped, codes trimmed and NFKC-normalised, MAJOR_FLG Y and valid on
    AS_OF_DATE, latest VALID_FROM_DT, operations in numeric PROC_SEQ order.
    """
    rows = (
        routings.unique(maintain_order=True)
        .with_columns(
            ITEM_CD=_clean_code("ITEM_CD"),
            PROC_SEQ=pl.col("PROC_SEQ").cast(pl.Int64),
            VALID_FROM_DT=pl.col("VALID_FROM_DT").str.slice(0, 10).str.to_date(),
            VALID_TO_DT=pl.col("VALID_TO_DT").str.slice(0, 10).str.to_date(),
        )
        .filter(
            (pl.col("MAJOR_FLG") == "Y")
            & (pl.col("VALID_FROM_DT") <= AS_OF_DATE)
            & (pl.col("VALID_TO_DT") >= AS_OF_DATE)
        )
    )
    chosen = (
        rows.select("ITEM_CD", "ROUT_NO", "VALID_FROM_DT").unique()
        .sort(["ITEM_CD", "VALID_FROM_DT", "ROUT_NO"])
        .group_by("ITEM_CD").last()
    )
    return (
        rows.join(chosen.select("ITEM_CD", "ROUT_NO"), on=["ITEM_CD", "ROUT_NO"])
        .sort(["ITEM_CD", "PROC_SEQ"])
        .group_by("ITEM_CD", maintain_order=True)
        .agg(pl.col("JOB_CD"), pl.col("ROUT_NO").first())
    )


# --- files and report ------------------------------------------------------------


def test_files_have_view_columns(sample_dir: Path, items, routings, work_orders):
    assert items.columns == ITEM_COLUMNS
    assert routings.columns == ROUTING_COLUMNS
    assert work_orders.columns == WORK_ORDER_COLUMNS
    assert sorted(p.name for p in sample_dir.iterdir()) == sorted(
        [f"{ITEM_VIEW}.parquet", f"{ROUTING_VIEW}.parquet", f"{WORK_ORDER_VIEW}.parquet", REPORT_FILE]
    )


def test_routing_view_is_all_text(routings):
    assert all(dtype == pl.String for dtype in routings.schema.values())


def test_report_matches_files(report, items, routings, work_orders):
    assert report["n_items"] == N_ITEMS == items.height
    assert report["n_routing_rows"] == routings.height
    assert report["n_work_order_rows"] == work_orders.height
    assert sum(report["family_counts"].values()) == N_ITEMS
    assert report["noise_ceiling_top1"] == pytest.approx(1 - report["deviation_share"])
    assert report["seconds"] > 0


def test_item_codes_unique_after_normalising(items):
    codes = items.select(_clean_code("ITEM_CD"))["ITEM_CD"]
    assert codes.n_unique() == items.height


def test_rejects_non_positive_item_count(tmp_path: Path):
    with pytest.raises(ValueError, match="n_items"):
        generate_sample(0, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- determinism -----------------------------------------------------------------


def test_same_seed_gives_identical_frames():
    first = build_sample(500, seed=11)
    second = build_sample(500, seed=11)
    assert first.items.equals(second.items)
    assert first.routings.equals(second.routings)
    assert first.work_orders.equals(second.work_orders)


def test_written_files_are_deterministic(tmp_path: Path, sample_dir: Path):
    generate_sample(N_ITEMS, tmp_path, seed=7)
    for view in (ITEM_VIEW, ROUTING_VIEW, WORK_ORDER_VIEW):
        again = pl.read_parquet(tmp_path / f"{view}.parquet")
        assert again.equals(pl.read_parquet(sample_dir / f"{view}.parquet")), view


def test_other_seed_gives_other_items():
    assert not build_sample(300, seed=1).items.equals(build_sample(300, seed=2).items)


def test_tiny_samples_work():
    for n in (1, 2, 5):
        frames = build_sample(n, seed=3)
        assert frames.items.height == n


# --- plant model -----------------------------------------------------------------


def test_elastomers_have_no_routing(items, routings):
    elastomer_codes = items.filter(pl.col("ITEM_GRP1").is_in(["E10", "E20"])).select(_clean_code("ITEM_CD"))
    assert elastomer_codes.height > 0
    routed = routings.select(_clean_code("ITEM_CD")).unique()
    assert elastomer_codes.join(routed, on="ITEM_CD").height == 0


def test_active_routing_per_routed_item(report, items, active_sequences):
    master = items.select(_clean_code("ITEM_CD"))
    in_master = active_sequences.join(master, on="ITEM_CD")
    assert in_master.height == report["n_items_with_routing"]
    assert in_master["JOB_CD"].list.len().min() >= 2


def test_every_job_code_has_one_name(routings):
    names = routings.group_by("JOB_CD").agg(pl.col("JOB_NM").n_unique())
    assert names["JOB_NM"].max() == 1
    assert set(routings["JOB_CD"].unique()) <= {job.code for job in JOBS}


def test_rule_sequences_are_dozens(report):
    assert 20 <= report["n_rule_sequences"] <= 100


def test_deviation_share_in_band(report):
    assert 0.06 <= report["deviation_share"] <= 0.16
    assert sum(report["deviation_counts"].values()) > 0


# Attributes the rule reads, per family; items with any of them missing are skipped.
_RULE_INPUTS = {
    "ASSY": ["ITEM_GRP1", "SealTypeGrup", "GROUP2", "STANDARD_YN", "IN_SEALSIZE"],
    "FACE": ["RAW_MATL_KIND", "ITEM_MATERIAL", "GROUP1", "OUTDIAMETER"],
    "METAL": ["ITEM_GRP1", "RAW_MATL_KIND", "ITEM_MATERIAL", "OUTDIAMETER"],
    "SPRING": ["ITEM_GRP1", "RAW_MATL_KIND", "OUTDIAMETER"],
}


def test_rule_follows_item_master(report, items, active_sequences):
    """On items whose rule inputs are present in the master, the share of active routings
    equal to ``routing_rule`` is the noise ceiling: the rule is learnable from the master."""
    matches = total = 0
    candidates = items.with_columns(_clean_code("ITEM_CD")).join(active_sequences, on="ITEM_CD")
    for family, inputs in _RULE_INPUTS.items():
        complete = candidates.filter(
            (pl.col("PART_TYPE") == family)
            & ~pl.any_horizontal(_missing(c) for c in inputs)
            & ((pl.col("OUTDIAMETER_UNIT") == "mm") | pl.lit("OUTDIAMETER" not in inputs))
        )
        for row in complete.iter_rows(named=True):
            expected = routing_rule(
                family=family,
                subtype=ITEM_GRP1_KINDS.get(row["ITEM_GRP1"] or "", ""),
                raw_material=row["RAW_MATL_KIND"] or "",
                material=row["ITEM_MATERIAL"] or "",
                arrangement=row["SealTypeGrup"] or "",
                api682=row["GROUP2"] == "API682",
                standard=row["STANDARD_YN"] in ("Y", "1"),
                rotary=row["GROUP1"] == "ROTARY",
                outdiameter_mm=row["OUTDIAMETER"] or 0.0,
                seal_size_mm=row["IN_SEALSIZE"] or 0.0,
            )
            matches += tuple(row["JOB_CD"]) == expected
            total += 1
    assert total > N_ITEMS // 2
    assert matches / total == pytest.approx(report["noise_ceiling_top1"], abs=0.04)


def test_rule_matches_erp_fixture_routing():
    # The real cartridge-seal routing in the ERP excerpt: F61-1, F40-1, Q30-1, F20-3.
    jobs = routing_rule(
        family="ASSY", subtype="CARTRIDGE", raw_material="SUS316", material="SiC/SiC",
        arrangement="SINGLE", api682=False, standard=True, rotary=False,
        outdiameter_mm=140.0, seal_size_mm=45.0,
    )
    assert jobs == ("F61-1", "F40-1", "Q30-1", "F20-3")


def test_rule_gives_elastomers_no_operations():
    assert routing_rule("ELASTOMER", "ORING", "RUBBER", "FKM", "SINGLE", False, True, False, 40.0, 35.0) == ()


def test_hard_faces_are_ground_and_lapped():
    jobs = routing_rule("FACE", "SiC", "SiC", "SSIC", "SINGLE", False, True, True, 60.0, 45.0)
    assert {"M30-1", "M40-1", "M41-1", "Q30-2"} <= set(jobs)


def test_hardened_metal_goes_to_subcontractor():
    jobs = routing_rule("METAL", "SLEEVE", "SUS420", "SUS420J2", "SINGLE", False, True, False, 60.0, 50.0)
    assert "O10-1" in jobs


def test_outside_operations_are_subcontracted(routings):
    outside = routings.filter(pl.col("JOB_CD").str.starts_with("O"))
    assert outside.height > 0
    assert set(outside["INSIDE_FLAG"].unique()) <= {"N", "외주"}
    assert not outside["BP_CD"].is_in(["NULL"]).any()


def test_work_orders_reference_active_routings(work_orders, active_sequences):
    reported = work_orders.select(_clean_code("ITEM_CD"), "ROUT_NO").unique()
    assert reported.join(active_sequences, on=["ITEM_CD", "ROUT_NO"], how="anti").height == 0


def test_work_order_quantities_and_dates(work_orders):
    assert work_orders["ORDER_QTY"].min() >= 1
    assert work_orders["ORDER_QTY"].max() <= 500
    assert (work_orders["BAD_QTY"] <= work_orders["ORDER_QTY"]).all()
    assert (work_orders["BAD_QTY"] == 0).mean() > 0.8
    assert (work_orders["BAD_QTY"] == work_orders["ORDER_QTY"]).any()
    first_day = date(AS_OF_DATE.year - 3, AS_OF_DATE.month, AS_OF_DATE.day)
    assert work_orders["REPORT_DT"].dt.date().min() >= first_day
    assert work_orders["REPORT_DT"].dt.date().max() <= AS_OF_DATE


def test_work_orders_are_skewed(work_orders, report):
    orders_per_item = work_orders.group_by("ITEM_CD").agg(pl.col("REPORT_DT").n_unique())
    assert orders_per_item.height < report["n_items_with_routing"]  # many items have none
    assert orders_per_item["REPORT_DT"].max() >= 10


# --- injected habits -------------------------------------------------------------


def test_null_markers_in_cells(report, items, routings):
    assert report["null_string_cells"][ITEM_VIEW] > 0
    assert report["null_string_cells"][ROUTING_VIEW] > 0
    assert (routings["RUN_TIME"] == "NULL").any()
    assert (items["ITEM_SPEC"] == "NULL").any()


def test_time_units_convert_to_same_minutes(report, routings):
    """Other TIME_UNIT spellings carry converted values: WAIT_TIME in minutes stays one of
    the catalog's defaults (or its half)."""
    assert report["non_minute_time_unit_rows"] > 0
    defaults = {job.wait_min for job in JOBS} | {round(job.wait_min * 0.5) for job in JOBS}
    converted = (
        routings.filter(pl.col("TIME_UNIT") != "M", pl.col("TIME_UNIT").is_in(list(TIME_UNIT_TO_MINUTES)))
        .filter(pl.col("WAIT_TIME").str.contains(r"^[0-9.]+$"))
        .select(
            (pl.col("WAIT_TIME").cast(pl.Float64)
             * pl.col("TIME_UNIT").replace_strict(TIME_UNIT_TO_MINUTES, return_dtype=pl.Float64)).round(1)
        )
        .to_series()
    )
    assert converted.len() > 0
    assert set(converted.unique()) <= {float(d) for d in defaults}


def test_unknown_time_units_counted(report, routings):
    unknown = routings.filter(~pl.col("TIME_UNIT").is_in(list(TIME_UNIT_TO_MINUTES)))
    assert unknown.height == report["unknown_time_unit_rows"]


def test_duplicated_rows_present(report, routings):
    assert report["duplicated_rows"] > 0
    assert routings.height - routings.unique().height == report["duplicated_rows"]


def test_operations_out_of_order(report, routings):
    previous = pl.col("PROC_SEQ").cast(pl.Int64).shift(1).over(["ITEM_CD", "ROUT_NO"])
    decreasing = routings.filter(pl.col("PROC_SEQ").cast(pl.Int64) < previous)
    assert report["out_of_order_routings"] > 0
    assert decreasing.select("ITEM_CD", "ROUT_NO").n_unique() == report["out_of_order_routings"]


def test_absurd_times_present(report, routings):
    run = routings.filter(pl.col("RUN_TIME").str.contains(r"^-?[0-9.]+$"))["RUN_TIME"].cast(pl.Float64)
    assert ((run < 0) | (run >= 99999)).sum() >= report["absurd_time_rows"] > 0


def test_orphan_routings_not_in_master(report, items, routings):
    master = items.select(_clean_code("ITEM_CD"))
    orphans = routings.with_columns(_clean_code("ITEM_CD")).join(master, on="ITEM_CD", how="anti")
    assert orphans.height >= report["orphan_routing_rows"] > 0


def test_item_code_variants(items, routings):
    assert items["ITEM_CD"].str.ends_with(" ").any()
    assert (items["ITEM_CD"].str.starts_with("0")).any()  # leading zeros kept
    codes = pl.concat([items["ITEM_CD"], routings["ITEM_CD"]])
    assert codes.str.contains("\uff0d", literal=True).any()


def test_geometry_in_mm_and_inch(items):
    units = set(items["OUTDIAMETER_UNIT"].drop_nulls().unique())
    assert {"mm", "inch"} <= units
    inch = items.filter(pl.col("OUTDIAMETER_UNIT") == "inch")["OUTDIAMETER"].drop_nulls()
    assert inch.max() < 30  # the largest parts are about 600 mm


def test_rare_attributes_are_sparse(items):
    for column in ("MID_SEALTYPE_CD", "OUT_SEALSIZE", "MATERIAL_DESC", "GROUP3"):
        share = items.select(_missing(column).mean()).item()
        assert 0.75 <= share <= 0.99, column
    for column in ("PART_TYPE", "ITEM_MATERIAL", "OUTDIAMETER"):
        share = items.select(_missing(column).mean()).item()
        assert 0.0 < share < 0.1, column
