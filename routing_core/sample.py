"""Deterministic sample ERP extract of a mechanical-seal plant: item master, routings and work orders.

``generate_sample`` writes the three views as Parquet files named after the views, in the
raw form an ERP extract delivers them (before validation), plus ``sample_report.json``.

The plant has five item families. Seal assemblies (PART_TYPE "ASSY"), seal faces ("FACE"),
metal parts ("METAL") and springs or welded bellows ("SPRING") are made in-house and have
routings. Elastomer parts ("ELASTOMER": O-rings, gaskets) are bought in and have none.
Each routing follows ``routing_rule``, a deterministic function of item-master attributes,
except for a random share of items whose routing deviates from it (an extra, missing,
swapped or alternative operation). That share caps the top-1 accuracy of any predictor
of the rule, and the report gives it as ``noise_ceiling_top1``.

Raw dtypes, as the views arrive from the ERP:

- item master: text columns are String, the geometry and seal-size columns Float64;
- routing: every column is String (numbers as text, the empty cell written ``NULL``,
  dates as ``2001-01-01 00:00:00.000``), as in an ERP CSV export;
- work orders: PROC_SEQ Int64, REPORT_DT Datetime, hours and quantities Float64.

Habits of real extracts are injected at low rates, and the report counts all but the flag
spellings:

- the text ``NULL``, ``-`` or an empty string in cells;
- TIME_UNIT spellings other than "M", with the values converted so the minutes stay the same,
  and a few rows with a TIME_UNIT that schema.TIME_UNIT_TO_MINUTES does not list;
- operation rows stored out of PROC_SEQ order, and exact duplicated routing rows;
- negative or absurd run times;
- routing rows whose ITEM_CD is missing from the master;
- ITEM_CD values with trailing spaces or a full-width hyphen;
- item geometry in inches, and the flag spellings 1/0 and 사내/외주.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from routing_core.schema import (
    ITEM_COLUMNS,
    ITEM_VIEW,
    ROUTING_COLUMNS,
    ROUTING_TIME_COLUMNS,
    ROUTING_VIEW,
    WORK_ORDER_COLUMNS,
    WORK_ORDER_VIEW,
)

logger = logging.getLogger(__name__)

REPORT_FILE = "sample_report.json"

# Fixed "today" of the sample, so that the same seed gives the same dates on any day.
# Every routing becomes valid on or before it, and work orders cover the 3 years before it.
AS_OF_DATE = date(2026, 11, 30)
OPEN_END_DATE = date(2999, 12, 31)

FAMILY_SHARES = {"ASSY": 0.15, "FACE": 0.28, "METAL": 0.35, "SPRING": 0.12, "ELASTOMER": 0.10}
FAMILIES = list(FAMILY_SHARES)
ROUTED_FAMILIES = ["ASSY", "FACE", "METAL", "SPRING"]

NEW_ITEM_RATE = 0.03  # made-in-house items that have no routing yet
DEVIATION_RATE = 0.11
OLDER_ROUTING_RATE = 0.11

# --- plant catalog ---------------------------------------------------------------

# RES_CD: (RES_DIS, WC_CD)
RESOURCES: dict[str, tuple[str, str]] = {
    "ASY-WC1A": ("조립 작업장 1A", "151211"),
    "ASY-WC1B": ("조립 작업장 1B", "151212"),
    "ASY-WC2": ("대형 조립 작업장", "151220"),
    "TST-01": ("압력시험기 1호기", "151231"),
    "TST-02": ("압력시험기 2호기", "151232"),
    "TST-03": ("헬륨 누설시험기", "151233"),
    "TST-04": ("회전성능 시험대", "151240"),
    "INS-WC1": ("정밀 측정실", "161110"),
    "INS-WC2": ("최종 검사실", "161120"),
    "INS-WC3": ("스프링 하중시험기", "161130"),
    "INS-CMM": ("3차원 측정기", "161140"),
    "LKT-01": ("벨로우즈 누설시험기", "161150"),
    "PKG-01": ("포장 작업장", "171110"),
    "MRK-01": ("레이저 마킹기", "171120"),
    "WSH-01": ("세척기 1호기", "141510"),
    "WSH-02": ("초음파 세척기", "141520"),
    "SAW-01": ("밴드쏘", "131010"),
    "CNC-대기": ("CNC 대기", "131100"),
    "CNC-01": ("CNC 선반 1호기", "131110"),
    "CNC-02": ("CNC 선반 2호기", "131120"),
    "CNC-03": ("카본 전용 CNC 선반", "131130"),
    "CNC-04": ("대형 CNC 선반", "131140"),
    "CNC-05": ("복합가공기", "131150"),
    "MCT-01": ("머시닝센터 1호기", "131210"),
    "MCT-02": ("머시닝센터 2호기", "131220"),
    "DRL-01": ("드릴링머신", "131310"),
    "DBR-01": ("디버링 작업대", "131410"),
    "GRD-01": ("평면연삭기 1호기", "141110"),
    "GRD-02": ("다이아몬드 평면연삭기", "141120"),
    "GRD-03": ("원통연삭기", "141130"),
    "GRD-04": ("스프링 연마기", "141140"),
    "GRD-05": ("내외경 연삭기", "141150"),
    "GRD-06": ("양면 연삭기", "141160"),
    "EDM-01": ("방전가공기", "141210"),
    "LAP-01": ("래핑기 1호기", "141310"),
    "LAP-02": ("대형 래핑기", "141320"),
    "LAP-03": ("정밀 래핑기", "141330"),
    "POL-01": ("폴리싱기", "141410"),
    "SPR-01": ("스프링 권선기", "121110"),
    "PRS-01": ("프레스 1호기", "121210"),
    "PRS-02": ("다이어프램 프레스", "121220"),
    "WLD-01": ("플라즈마 용접기", "121310"),
    "FUR-01": ("열처리로", "121410"),
    "EXT-HT": ("외주 열처리", "190110"),
    "EXT-PLT": ("외주 도금", "190120"),
    "EXT-CT": ("외주 코팅", "190130"),
    "EXT-IMP": ("외주 함침", "190140"),
}
RESOURCE_CODES = list(RESOURCES)
_RESOURCE_INDEX = {code: i for i, code in enumerate(RESOURCE_CODES)}


@dataclass(frozen=True)
class Job:
    """One operation of the plant's job catalog, with its standard-time basis in minutes.

    ``kind`` selects how the times scale with item size and material hardness (see
    ``_planned_minutes``). ``large_resource`` replaces the resource for parts of 150 mm
    outside diameter or more. Subcontracted jobs (kind "out") have vendors and an MFG_LT
    in days and no in-house time.
    """

    code: str
    name: str
    kind: str
    resources: tuple[str, ...]
    setup_min: float = 0.0
    run_min: float = 0.0
    queue_min: float = 0.0
    wait_min: float = 200.0
    move_min: float = 200.0
    large_resource: str | None = None
    vendors: tuple[str, ...] = ()
    mfg_lt_days: int = 0


JOBS: list[Job] = [
    # assembly line
    Job("F10-1", "부품 세척", "wash", ("WSH-02",), run_min=6, wait_min=100, move_min=100),
    Job("F10-2", "초음파 세척", "wash", ("WSH-02",), run_min=9, wait_min=100, move_min=100),
    Job("F61-1", "조립", "asm", ("ASY-WC1A", "ASY-WC1B"), run_min=38, large_resource="ASY-WC2"),
    Job("F61-2", "2차 조립", "asm", ("ASY-WC1A", "ASY-WC1B"), run_min=25, large_resource="ASY-WC2"),
    Job("F61-3", "컴포넌트 씰 조립", "asm", ("ASY-WC1B",), run_min=15, large_resource="ASY-WC2"),
    Job("F61-4", "벨로우즈 씰 조립", "asm", ("ASY-WC1A",), run_min=30, large_resource="ASY-WC2"),
    Job("F61-5", "클린룸 조립", "asm", ("ASY-WC2",), run_min=45),
    Job("F40-1", "압력시험", "test", ("ASY-WC1A", "TST-01"), run_min=16),
    Job("F40-2", "이중씰 압력시험", "test", ("TST-01", "TST-02"), run_min=30),
    Job("F40-3", "헬륨 누설시험", "test", ("TST-03",), run_min=25),
    Job("F40-4", "진공시험", "test", ("TST-02",), run_min=20),
    Job("F45-1", "회전성능시험", "test", ("TST-04",), setup_min=30, run_min=90),
    Job("F30-1", "각인", "mark", ("MRK-01",), run_min=3),
    Job("F20-3", "포장", "pack", ("ASY-WC1A", "PKG-01"), run_min=4),
    Job("F20-5", "수출 포장", "pack", ("PKG-01",), run_min=12),
    # inspection
    Job("Q10-1", "수입검사", "insp", ("INS-WC1",), run_min=3, wait_min=300, move_min=300),
    Job("Q30-1", "최종검사", "insp", ("INS-WC2",), run_min=15, wait_min=300, move_min=300),
    Job("Q30-2", "평탄도 검사", "insp", ("INS-WC1",), run_min=6, wait_min=300, move_min=300),
    Job("Q30-3", "치수검사", "insp", ("INS-WC1",), run_min=8, wait_min=300, move_min=300),
    Job("Q30-4", "하중검사", "insp", ("INS-WC3",), run_min=2, wait_min=300, move_min=300),
    Job("Q30-5", "3차원 측정", "insp", ("INS-CMM",), setup_min=15, run_min=20, wait_min=300, move_min=300),
    Job("Q31-1", "중간검사", "insp", ("INS-WC1",), run_min=5, wait_min=300, move_min=300),
    Job("Q35-1", "검사성적서 작성", "insp", ("INS-WC2",), run_min=20, wait_min=300, move_min=300),
    Job("Q40-1", "헬륨 누설검사", "test", ("LKT-01",), run_min=12),
    # machining
    Job("M01-1", "소재 절단", "mach", ("SAW-01",), setup_min=10, run_min=4, wait_min=100, move_min=100),
    Job("M10-1", "카본 선삭", "mach", ("CNC-03",), setup_min=30, run_min=10, queue_min=60),
    Job("M10-2", "CNC 선반가공", "mach", ("CNC-01", "CNC-02"), setup_min=40, run_min=18, queue_min=60,
        large_resource="CNC-04"),
    Job("M10-5", "복합가공", "mach", ("CNC-05",), setup_min=60, run_min=22, queue_min=60),
    Job("M20-1", "밀링", "mach", ("MCT-01", "MCT-02"), setup_min=45, run_min=20, queue_min=60),
    Job("M20-2", "드릴/탭 가공", "mach", ("DRL-01", "MCT-02"), setup_min=20, run_min=8),
    Job("M20-3", "방전가공", "mach", ("EDM-01",), setup_min=30, run_min=45),
    Job("M20-5", "MCT 복합가공", "mach", ("MCT-02",), setup_min=60, run_min=25, queue_min=60),
    Job("M30-1", "평면연삭", "mach", ("GRD-01", "GRD-02"), setup_min=20, run_min=12),
    Job("M30-2", "외경연삭", "mach", ("GRD-03",), setup_min=30, run_min=15),
    Job("M30-5", "양면연삭", "mach", ("GRD-06",), setup_min=40, run_min=6),
    Job("M31-1", "내외경연삭", "mach", ("GRD-05",), setup_min=30, run_min=14),
    Job("M40-1", "래핑", "lap", ("LAP-01",), setup_min=10, run_min=20, large_resource="LAP-02"),
    Job("M40-5", "정밀 래핑", "lap", ("LAP-03",), setup_min=15, run_min=30),
    Job("M41-1", "폴리싱", "lap", ("POL-01",), setup_min=5, run_min=10),
    Job("M42-1", "재래핑", "lap", ("LAP-01",), setup_min=10, run_min=15),
    Job("M50-1", "디버링", "mach", ("DBR-01",), run_min=4, wait_min=100, move_min=100),
    Job("M60-1", "레이저 마킹", "mark", ("MRK-01",), run_min=2),
    Job("M90-1", "세척", "wash", ("WSH-01",), run_min=3, wait_min=100, move_min=100),
    # springs and bellows
    Job("S10-1", "코일 권선", "form", ("SPR-01",), setup_min=30, run_min=1.5),
    Job("S11-1", "웨이브 성형", "form", ("PRS-01",), setup_min=40, run_min=3),
    Job("S20-1", "열처리", "heat", ("FUR-01",), setup_min=15, run_min=180, wait_min=240, move_min=100),
    Job("S30-1", "단면 연마", "form", ("GRD-04",), setup_min=20, run_min=2),
    Job("S40-1", "다이어프램 성형", "form", ("PRS-02",), setup_min=40, run_min=6),
    Job("S41-1", "벨로우즈 용접", "form", ("WLD-01",), setup_min=30, run_min=35),
    Job("S50-1", "프리셋팅", "form", ("PRS-01",), setup_min=10, run_min=2),
    # subcontracted
    Job("O10-1", "외주 열처리", "out", ("EXT-HT",), wait_min=480, move_min=480,
        vendors=("V20011", "V20014"), mfg_lt_days=5),
    Job("O10-2", "외주 시효처리", "out", ("EXT-HT",), wait_min=480, move_min=480,
        vendors=("V20014",), mfg_lt_days=7),
    Job("O20-1", "외주 함침", "out", ("EXT-IMP",), wait_min=480, move_min=480,
        vendors=("V40005",), mfg_lt_days=10),
    Job("O30-1", "외주 경질크롬도금", "out", ("EXT-PLT",), wait_min=480, move_min=480,
        vendors=("V30102",), mfg_lt_days=6),
    Job("O31-1", "외주 세라믹 코팅", "out", ("EXT-CT",), wait_min=480, move_min=480,
        vendors=("V30117", "V30120"), mfg_lt_days=10),
]
JOB_INDEX = {job.code: i for i, job in enumerate(JOBS)}

# The operation an engineer may write instead of the rule's one (an "alternative op" deviation).
ALTERNATIVE_JOBS: dict[str, str] = {
    "F10-1": "F10-2", "F61-1": "F61-5", "F61-2": "F61-5", "F61-3": "F61-5", "F61-4": "F61-5",
    "F40-1": "F40-4", "F40-2": "F40-4", "F20-3": "F20-5",
    "Q30-2": "Q30-5", "Q30-3": "Q30-5",
    "M10-1": "M10-5", "M10-2": "M10-5", "M20-1": "M20-5", "M20-2": "M20-1",
    "M30-1": "M30-5", "M31-1": "M30-2", "M40-1": "M40-5",
    "S20-1": "O10-1", "O10-1": "S20-1",
}

# Operations an engineer adds beyond the rule (an "extra op" deviation), per family.
EXTRA_JOBS: dict[str, tuple[str, ...]] = {
    "ASSY": ("F30-1", "F10-2", "Q31-1"),
    "FACE": ("M50-1", "Q31-1", "M42-1"),
    "METAL": ("Q31-1", "M60-1", "Q30-5"),
    "SPRING": ("Q31-1", "M90-1", "S50-1"),
}

# Machining-time factor of each RAW_MATL_KIND, relative to SUS304.
HARDNESS: dict[str, float] = {
    "SiC": 1.8, "WC": 2.2, "CARBON": 0.7, "SUS304": 1.0, "SUS316": 1.05, "SUS420": 1.2,
    "SUS630": 1.3, "HASTELLOY": 1.6, "INCONEL": 1.7, "DUPLEX": 1.3, "AM350": 1.3, "RUBBER": 1.0,
}

# Steels that are hardened or aged by a subcontractor after machining.
HEAT_TREATED_METALS = frozenset({"SUS420", "SUS630", "INCONEL"})

DEVIATION_KINDS = {1: "extra_op", 2: "missing_op", 3: "swapped_ops", 4: "alternative_op"}
_EXTRA, _MISSING, _SWAP, _ALTERNATIVE = 1, 2, 3, 4

# TIME_UNIT spellings written instead of "M" (factor from minutes to that unit); all are
# in schema.TIME_UNIT_TO_MINUTES. "MI" and "T" are not, and stand for the unknown units.
OTHER_TIME_UNITS: dict[str, float] = {
    "S": 60.0, "SEC": 60.0, "초": 60.0, "H": 1 / 60, "HR": 1 / 60, "시간": 1 / 60, "분": 1.0,
}
UNKNOWN_TIME_UNITS = ("MI", "T")

SEAL_SIZES_MM = np.array([
    16, 18, 20, 22, 24, 25, 28, 30, 32, 33, 35, 38, 40, 43, 45, 48, 50, 53, 55, 58, 60, 63, 65,
    68, 70, 75, 80, 85, 90, 95, 100, 110, 115, 120, 125, 130, 140, 150, 160, 180, 200, 220, 250,
    280, 300,
], dtype=np.float64)
_SEAL_SIZE_WEIGHTS = np.exp(-SEAL_SIZES_MM / 55.0)


# --- routing rule ----------------------------------------------------------------


def routing_rule(
    family: str,
    subtype: str,
    raw_material: str,
    material: str,
    arrangement: str,
    api682: bool,
    standard: bool,
    rotary: bool,
    outdiameter_mm: float,
    seal_size_mm: float,
) -> tuple[str, ...]:
    """Return the JOB_CD sequence the plant's rule gives an item.

    The arguments are item-master attributes before any masking:

    - ``family``: PART_TYPE;
    - ``subtype``: the kind that ITEM_GRP1 encodes (see ITEM_GRP1_KINDS);
    - ``raw_material``: RAW_MATL_KIND, and ``material``: ITEM_MATERIAL;
    - ``arrangement``: SealTypeGrup (SINGLE, DOUBLE or TANDEM);
    - ``api682``: whether GROUP2 is "API682", and ``standard``: STANDARD_YN;
    - ``rotary``: whether a face's GROUP1 is "ROTARY";
    - ``outdiameter_mm`` and ``seal_size_mm``: OUTDIAMETER and IN_SEALSIZE in millimetres.

    Elastomer parts are bought in, so they get an empty sequence.
    """
    if family == "ASSY":
        jobs = ["F10-1"] if api682 else []
        if subtype == "CARTRIDGE":
            jobs += ["F61-1", "F40-1"] if arrangement == "SINGLE" else ["F61-1", "F61-2", "F40-2"]
        elif subtype == "COMPONENT":
            jobs += ["F61-3", "F40-1"] if seal_size_mm >= 100 else ["F61-3"]
        else:
            jobs += ["F61-4"] if arrangement == "SINGLE" else ["F61-4", "F61-2"]
            jobs += ["F40-3"]
        if api682:
            jobs += ["F45-1"]
        jobs += ["Q30-1"] if standard else ["Q30-1", "Q35-1"]
        return (*jobs, "F20-3")

    if family == "FACE":
        if raw_material == "CARBON":
            jobs = ["M10-1"]
            if rotary:
                jobs += ["M20-1"]  # drive notches
            if material == "CARBON-SB":
                jobs += ["O20-1"]
            return (*jobs, "M40-1", "M90-1", "Q30-2")
        jobs = ["Q10-1", "M30-1"]
        if raw_material == "WC" or outdiameter_mm >= 80:
            jobs += ["M31-1"]
        if raw_material == "WC" and rotary:
            jobs += ["M20-3"]
        return (*jobs, "M40-1", "M41-1", "M90-1", "Q30-2")

    if family == "METAL":
        jobs = [] if outdiameter_mm >= 150 else ["M01-1"]  # large parts come as forged rings
        jobs += ["M10-2"]
        if subtype == "GLAND":
            jobs += ["M20-1", "M50-1"]
        elif subtype in ("RETAINER", "COLLAR"):
            jobs += ["M20-2", "M50-1"]
        if raw_material in HEAT_TREATED_METALS:
            jobs += ["O10-1"]
        if subtype == "SLEEVE":
            if material.endswith("+CERAMIC"):
                jobs += ["O31-1", "M30-2"]
            elif material.endswith("+HCr"):
                jobs += ["M30-2", "O30-1"]
            else:
                jobs += ["M30-2"]
        return (*jobs, "M90-1", "Q30-3")

    if family == "SPRING":
        if subtype == "BELLOWS":
            aging = "O10-2" if raw_material in ("AM350", "INCONEL") else "S20-1"
            return ("S40-1", "S41-1", aging, "Q40-1", "Q30-4")
        heat = "O10-1" if raw_material in ("HASTELLOY", "INCONEL") else "S20-1"
        if subtype == "WAVE":
            return ("S11-1", heat, "M90-1", "Q30-4")
        jobs = ["S10-1", heat]
        if outdiameter_mm >= 20:
            jobs += ["S30-1"]
        return (*jobs, "Q30-4")

    return ()


def _deviate(jobs: tuple[str, ...], kind: int, position: int, choice: int, family: str) -> tuple[str, ...]:
    """Return ``jobs`` changed by one deviation; the result always differs from ``jobs``.

    A missing op needs 3 operations (so 2 remain), a swap two different adjacent codes and
    an alternative op a job listed in ALTERNATIVE_JOBS. When the requested kind cannot
    apply, an extra op is inserted instead.
    """
    n = len(jobs)
    if kind == _MISSING and n >= 3:
        k = position % n
        return jobs[:k] + jobs[k + 1:]
    if kind == _SWAP and n >= 2:
        k = position % (n - 1)
        if jobs[k] != jobs[k + 1]:
            return jobs[:k] + (jobs[k + 1], jobs[k]) + jobs[k + 2:]
    if kind == _ALTERNATIVE:
        replaceable = [i for i, code in enumerate(jobs) if code in ALTERNATIVE_JOBS]
        if replaceable:
            k = replaceable[position % len(replaceable)]
            return jobs[:k] + (ALTERNATIVE_JOBS[jobs[k]],) + jobs[k + 1:]
    pool = EXTRA_JOBS[family]
    k = 1 + position % n  # never before the first operation
    return jobs[:k] + (pool[choice % len(pool)],) + jobs[k:]


class _SequenceTable:
    """Distinct JOB_CD sequences, each with a dense id in order of first use."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, ...], int] = {}
        self.sequences: list[tuple[str, ...]] = []

    def intern(self, jobs: tuple[str, ...]) -> int:
        """Return the id of ``jobs``, adding the sequence if it is new."""
        if jobs not in self.ids:
            self.ids[jobs] = len(self.sequences)
            self.sequences.append(jobs)
        return self.ids[jobs]

    def flat_job_indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (lengths, start offsets, concatenated JOBS indices) of all sequences."""
        lengths = np.array([len(s) for s in self.sequences], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        flat = np.array([JOB_INDEX[c] for s in self.sequences for c in s], dtype=np.int64)
        return lengths, starts, flat


# --- report ----------------------------------------------------------------------


@dataclass
class SampleReport:
    """Counts of a generated sample, the injected habits and the noise ceiling.

    ``deviation_share`` is the share of routed items whose active routing's JOB_CD
    sequence differs from ``routing_rule``. The deviations are drawn at random, so no
    predictor working from item attributes can expect a top-1 sequence accuracy above
    ``noise_ceiling_top1 = 1 - deviation_share``. Attributes missing from the master lower
    the reachable accuracy further.
    ``null_string_cells`` counts cells written as ``NULL``, ``-`` or an empty string per
    view: in the item master these replace empty cells, in the routing view present values.
    Routing cells that are empty by nature (BP_CD of in-house steps, for instance) are
    written ``NULL`` too but are not counted.
    """

    n_items: int
    seed: int
    n_items_with_routing: int
    n_routings: int
    n_older_routings: int
    n_routing_rows: int
    n_work_orders: int
    n_work_order_rows: int
    family_counts: dict[str, int]
    family_routed_counts: dict[str, int]
    n_rule_sequences: int
    n_active_sequences: int
    deviation_counts: dict[str, int]
    deviation_share: float
    noise_ceiling_top1: float
    null_string_cells: dict[str, int]
    non_minute_time_unit_rows: int
    unknown_time_unit_rows: int
    out_of_order_routings: int
    duplicated_rows: int
    absurd_time_rows: int
    orphan_routing_rows: int
    item_code_variants: dict[str, int]
    inch_items: int
    zero_good_quantity_rows: int
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SampleFrames:
    """The three raw views of one generated sample and its report."""

    items: pl.DataFrame
    routings: pl.DataFrame
    work_orders: pl.DataFrame
    report: SampleReport


# --- public entry ----------------------------------------------------------------


def generate_sample(n_items: int, out_dir: Path, seed: int = 7) -> SampleReport:
    """Generate a sample ERP extract of ``n_items`` items and write it into ``out_dir``.

    Writes BI_ITEM_INFO_VIEW.parquet, BI_ROUTING_VIEW.parquet,
    BI_WORK_ORDER_RESULTS.parquet and sample_report.json. Each file is written under a
    temporary name and renamed, so an interrupted run never leaves a partial file (files
    of an earlier run may remain). The same ``n_items`` and ``seed`` give identical frames.
    Raises ValueError when ``n_items`` is not a positive integer.
    """
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    out_dir = Path(out_dir)
    started = time.perf_counter()
    logger.info("Generating sample: %d items, seed %d, into %s", n_items, seed, out_dir)

    sample = build_sample(int(n_items), seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {ITEM_VIEW: sample.items, ROUTING_VIEW: sample.routings, WORK_ORDER_VIEW: sample.work_orders}
    report = sample.report
    for view, frame in frames.items():
        path = out_dir / f"{view}.parquet"
        _write_atomically(path, frame.write_parquet)
        report.files[view] = str(path)
    report.seconds = round(time.perf_counter() - started, 3)
    report_path = out_dir / REPORT_FILE
    report.files["report"] = str(report_path)
    text = json.dumps(report.to_dict(), ensure_ascii=False, indent=2)
    _write_atomically(report_path, lambda p: Path(p).write_text(text, encoding="utf-8"))

    logger.info(
        "Sample written: %d items (%d with routing), %d routing rows, %d work-order rows, "
        "deviation share %.3f, in %.1f s",
        report.n_items, report.n_items_with_routing, report.n_routing_rows,
        report.n_work_order_rows, report.deviation_share, report.seconds,
    )
    return report


def build_sample(n_items: int, seed: int = 7) -> SampleFrames:
    """Build the three raw views and the report in memory, without writing anything.

    ``n_items`` must be a positive integer (``generate_sample`` checks it).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)

    truth = _make_items(rng, n_items)
    items, item_habits = _item_master(rng, truth)
    routings_plan = _plan_routings(rng, truth)
    ops = _expand_operations(rng, truth, routings_plan)
    routings, routing_habits = _routing_view(rng, routings_plan, ops)
    work_orders, work_order_counts = _work_orders(rng, truth, routings_plan, ops)

    report = _make_report(
        n_items, seed, truth, routings_plan, routings, work_orders,
        item_habits, routing_habits, work_order_counts,
    )
    report.seconds = round(time.perf_counter() - started, 3)
    return SampleFrames(items=items, routings=routings, work_orders=work_orders, report=report)


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and rename the temporary file to ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- items -----------------------------------------------------------------------


def _choice(rng: np.random.Generator, n: int, options: dict[str, float]) -> pl.Series:
    """Draw ``n`` strings from ``options`` (value: weight)."""
    values = list(options)
    weights = np.array(list(options.values()), dtype=np.float64)
    idx = rng.choice(len(values), size=n, p=weights / weights.sum())
    return pl.Series(values, dtype=pl.String).gather(idx)


def _text(values: list[str], idx: np.ndarray) -> pl.Series:
    """Return ``values[idx]`` as a String Series."""
    return pl.Series(values, dtype=pl.String).gather(idx)


def _seal_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(SEAL_SIZES_MM, size=n, p=_SEAL_SIZE_WEIGHTS / _SEAL_SIZE_WEIGHTS.sum())


def _numbers(rng: np.random.Generator, n: int) -> pl.Series:
    """Return ``n`` distinct running numbers in random order (1..n)."""
    return pl.Series(rng.permutation(n) + 1, dtype=pl.Int64)


def _codes_text(values: pl.Series | pl.Expr, width: int) -> pl.Expr:
    expr = values if isinstance(values, pl.Expr) else pl.lit(values)
    return expr.cast(pl.String).str.zfill(width)


def _common_columns(rng: np.random.Generator, n: int) -> dict[str, pl.Series]:
    """Columns whose distribution is the same in every family."""
    return {
        "_standard": pl.Series(rng.random(n) < 0.65),
        "GROUP2": _choice(rng, n, {"API682": 0.2, "EN12756": 0.15, "GENERAL": 0.65}),
        "GROUP3": _text([f"PJ{k}" for k in range(1000, 1400)], rng.integers(0, 400, n)),
        "DRAW_REV": _choice(rng, n, {"0": 0.4, "A": 0.3, "B": 0.2, "C": 0.1}),
        "ROTATION": _choice(rng, n, {"BOTH": 0.85, "CW": 0.08, "CCW": 0.07}),
    }


_APPLICATIONS = {"PUMP": 0.7, "MIXER": 0.12, "COMPRESSOR": 0.06, "BLOWER": 0.12}
_PART_ARRANGEMENTS = {"SINGLE": 0.7, "DOUBLE": 0.25, "TANDEM": 0.05}


def _assemblies(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Draw ``n`` seal assemblies: cartridge, component and bellows seals."""
    size = _seal_sizes(rng, n)
    frame = pl.DataFrame({
        "_family": pl.Series(["ASSY"] * n, dtype=pl.String),
        "_subtype": _choice(rng, n, {"CARTRIDGE": 0.5, "COMPONENT": 0.35, "BELLOWS": 0.15}),
        "_number": _numbers(rng, n) + 10000,
        "_arrangement_cartridge": _choice(rng, n, {"SINGLE": 0.6, "DOUBLE": 0.3, "TANDEM": 0.1}),
        "_arrangement_other": _choice(rng, n, {"SINGLE": 0.85, "DOUBLE": 0.15}),
        "_type_cartridge": _choice(rng, n, {"CS1": 0.5, "CS2": 0.3, "CS5": 0.2}),
        "_type_component": _choice(rng, n, {"CP1": 0.5, "CP3": 0.3, "CP7": 0.2}),
        "_type_bellows": _choice(rng, n, {"BM1": 0.6, "BH2": 0.4}),
        "_raw_material": _choice(rng, n, {"SUS316": 0.8, "SUS304": 0.07, "HASTELLOY": 0.08, "DUPLEX": 0.05}),
        "_material": _choice(rng, n, {
            "SiC/SiC": 0.35, "CARBON/SiC": 0.35, "WC/WC": 0.1, "CARBON/WC": 0.1, "SiC/WC": 0.1,
        }),
        "_size_mm": size,
        "_od_mm": np.round(size * 1.9 + 55 + rng.normal(0, 4, n), 1),
        "_id_mm": size,
        "_thickness_mm": np.round(55 + size * 0.6 + rng.uniform(0, 15, n), 1),
        "ITEM_UNIT": _choice(rng, n, {"SET": 0.3, "EA": 0.7}),
        "GROUP1": _choice(rng, n, _APPLICATIONS),
        **_common_columns(rng, n),
    })

    subtype = pl.col("_subtype")
    cartridge = subtype == "CARTRIDGE"
    frame = frame.with_columns(
        _arrangement=(
            pl.when(cartridge).then(pl.col("_arrangement_cartridge")).otherwise(pl.col("_arrangement_other"))
        ),
        IN_SEALTYPE_CD=(
            pl.when(cartridge).then(pl.col("_type_cartridge"))
            .when(subtype == "COMPONENT").then(pl.col("_type_component"))
            .otherwise(pl.col("_type_bellows"))
        ),
        _rotary=pl.lit(False),
    )

    name_ko = subtype.replace_strict({"CARTRIDGE": "카트리지 씰", "COMPONENT": "컴포넌트 씰", "BELLOWS": "벨로우즈 씰"})
    size_text = pl.col("_size_mm").cast(pl.Int64).cast(pl.String)
    double = pl.col("_arrangement") != "SINGLE"
    arrangement_note = pl.when(double).then(pl.format(" ({})", pl.col("_arrangement"))).otherwise(pl.lit(""))
    return frame.with_columns(
        ITEM_CD=pl.concat_str(
            pl.lit("H"), _codes_text(pl.col("_number"), 5), pl.lit("-"),
            subtype.replace_strict({"CARTRIDGE": "GS", "COMPONENT": "CP", "BELLOWS": "BL"}),
        ),
        ITEM_NM=pl.format(
            "{} {}-{} {}{}", name_ko, pl.col("IN_SEALTYPE_CD"), size_text, pl.col("_material"), arrangement_note,
        ),
        ITEM_SPEC=pl.format("{}mm {} {}", size_text, pl.col("_arrangement"), pl.col("GROUP2")),
        DRAW_NO=pl.concat_str(pl.lit("SD-"), _codes_text(pl.col("_number"), 6)),
        ITEM_TYPE=pl.lit("제품"),
        ITEM_GRP1=subtype.replace_strict({"CARTRIDGE": "A10", "COMPONENT": "A20", "BELLOWS": "A30"}),
        MATERIAL_DESC=pl.format("{} / {} / FKM", pl.col("_material"), pl.col("_raw_material")),
    )


def _faces(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Draw ``n`` seal faces of SiC, carbon or tungsten carbide (WC)."""
    size = _seal_sizes(rng, n)
    frame = pl.DataFrame({
        "_family": pl.Series(["FACE"] * n, dtype=pl.String),
        "_raw_material": _choice(rng, n, {"SiC": 0.45, "CARBON": 0.40, "WC": 0.15}),
        "_grade_sic": _choice(rng, n, {"SSIC": 0.6, "RBSIC": 0.4}),
        "_grade_carbon": _choice(rng, n, {"CARBON-RESIN": 0.7, "CARBON-SB": 0.3}),
        "_grade_wc": _choice(rng, n, {"WC-NI": 0.7, "WC-CO": 0.3}),
        "_number": _numbers(rng, n),
        "_size_mm": size,
        "_od_mm": np.round(size * 1.2 + 12 + rng.normal(0, 2, n), 1),
        "_id_mm": np.round(size + rng.uniform(1, 6, n), 1),
        "_thickness_mm": np.round(6 + size * 0.08 + rng.uniform(0, 5, n), 1),
        "_arrangement": _choice(rng, n, _PART_ARRANGEMENTS),
        "GROUP1": _choice(rng, n, {"ROTARY": 0.5, "STATIONARY": 0.5}),
        "IN_SEALTYPE_CD": _choice(rng, n, {"CS1": 0.3, "CS2": 0.2, "CP1": 0.2, "CP3": 0.2, "BM1": 0.1}),
        "_spare": pl.Series(rng.random(n) < 0.05),
        **_common_columns(rng, n),
    })

    raw = pl.col("_raw_material")
    rotary = pl.col("GROUP1") == "ROTARY"
    frame = frame.with_columns(
        _subtype=raw,
        _material=(
            pl.when(raw == "SiC").then(pl.col("_grade_sic"))
            .when(raw == "CARBON").then(pl.col("_grade_carbon"))
            .otherwise(pl.col("_grade_wc"))
        ),
        _rotary=rotary,
    )

    od_text = pl.col("_od_mm").round(0).cast(pl.Int64).cast(pl.String)
    return frame.with_columns(
        ITEM_CD=pl.concat_str(
            _codes_text(pl.col("_number"), 6), pl.lit("-"),
            raw.replace_strict({"SiC": "SC", "CARBON": "CB", "WC": "WC"}),
        ),
        ITEM_NM=pl.format(
            "{} {} Ø{}",
            pl.when(rotary).then(pl.lit("회전링")).otherwise(pl.lit("고정링")),
            raw.replace_strict({"SiC": "SiC", "CARBON": "카본", "WC": "초경"}),
            od_text,
        ),
        ITEM_SPEC=pl.format("Ø{}xØ{}x{}t", pl.col("_od_mm"), pl.col("_id_mm"), pl.col("_thickness_mm")),
        DRAW_NO=pl.concat_str(pl.lit("FD-"), _codes_text(pl.col("_number"), 6)),
        ITEM_TYPE=pl.when(pl.col("_spare")).then(pl.lit("제품")).otherwise(pl.lit("반제품")),
        ITEM_UNIT=pl.lit("EA"),
        ITEM_GRP1=raw.replace_strict({"SiC": "B10", "CARBON": "B20", "WC": "B30"}),
        MATERIAL_DESC=pl.col("_material").replace_strict({
            "SSIC": "상압소결 SiC", "RBSIC": "반응소결 SiC", "CARBON-RESIN": "레진함침 카본",
            "CARBON-SB": "안티몬함침 카본", "WC-NI": "니켈바인더 초경", "WC-CO": "코발트바인더 초경",
        }),
    )


def _metal_parts(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Draw ``n`` metal parts: sleeves, glands, retainers and collars."""
    frame = pl.DataFrame({
        "_family": pl.Series(["METAL"] * n, dtype=pl.String),
        "_subtype": _choice(rng, n, {"SLEEVE": 0.35, "GLAND": 0.25, "RETAINER": 0.2, "COLLAR": 0.2}),
        "_raw_material": _choice(rng, n, {
            "SUS316": 0.42, "SUS304": 0.12, "SUS420": 0.06, "SUS630": 0.05,
            "HASTELLOY": 0.12, "INCONEL": 0.04, "DUPLEX": 0.09,
        }),
        "_grade_316": _choice(rng, n, {"SUS316": 0.7, "SUS316L": 0.3}),
        "_coating": _choice(rng, n, {"": 0.7, "+HCr": 0.15, "+CERAMIC": 0.15}),
        "_number": _numbers(rng, n),
        "_size_mm": _seal_sizes(rng, n),
        "_noise": rng.uniform(0, 1, n),
        "_arrangement": _choice(rng, n, _PART_ARRANGEMENTS),
        "GROUP1": _choice(rng, n, _APPLICATIONS),
        "IN_SEALTYPE_CD": _choice(rng, n, {"CS1": 0.35, "CS2": 0.2, "CS5": 0.1, "CP1": 0.2, "BM1": 0.15}),
        "_spare": pl.Series(rng.random(n) < 0.07),
        **_common_columns(rng, n),
    })

    # Material: the grade of the raw material; SUS316 and SUS304 sleeves may carry a coating.
    subtype = pl.col("_subtype")
    base_material = pl.col("_raw_material").replace_strict(
        {
            "SUS304": "SUS304", "SUS420": "SUS420J2", "SUS630": "SUS630",
            "HASTELLOY": "HASTELLOY C276", "INCONEL": "INCONEL 718", "DUPLEX": "S31803",
        },
        default=pl.col("_grade_316"),
        return_dtype=pl.String,
    )
    coated = (subtype == "SLEEVE") & pl.col("_raw_material").is_in(["SUS316", "SUS304"])

    # Geometry from the seal size: outside and inside diameter, thickness or length.
    size = pl.col("_size_mm")
    noise = pl.col("_noise")
    od = (
        pl.when(subtype == "SLEEVE").then(size + 6 + noise * 6)
        .when(subtype == "GLAND").then(size * 1.8 + 60 + noise * 10)
        .when(subtype == "RETAINER").then(size + 25 + noise * 5)
        .otherwise(size + 20 + noise * 4)
    )
    inner = pl.when(subtype == "GLAND").then(size + 15).when(subtype == "RETAINER").then(size + 1).otherwise(size)
    thickness = (
        pl.when(subtype == "SLEEVE").then(40 + size * 0.5 + noise * 60)
        .when(subtype == "GLAND").then(18 + noise * 27)
        .when(subtype == "RETAINER").then(15 + noise * 20)
        .otherwise(12 + noise * 13)
    )
    frame = frame.with_columns(
        _material=pl.when(coated).then(pl.concat_str(base_material, pl.col("_coating"))).otherwise(base_material),
        _od_mm=od.round(1),
        _id_mm=inner,
        _thickness_mm=thickness.round(1),
        _rotary=pl.lit(False),
    )

    name_ko = subtype.replace_strict({"SLEEVE": "슬리브", "GLAND": "글랜드", "RETAINER": "리테이너", "COLLAR": "칼라"})
    od_text = pl.col("_od_mm").round(0).cast(pl.Int64).cast(pl.String)
    return frame.with_columns(
        ITEM_CD=pl.concat_str(
            subtype.replace_strict({"SLEEVE": "SL", "GLAND": "GL", "RETAINER": "RT", "COLLAR": "CL"}),
            pl.lit("-"), _codes_text(pl.col("_number"), 6),
        ),
        ITEM_NM=pl.format("{} {} Ø{}", name_ko, pl.col("_material"), od_text),
        ITEM_SPEC=pl.format("Ø{}xØ{}xL{}", pl.col("_od_mm"), pl.col("_id_mm"), pl.col("_thickness_mm")),
        DRAW_NO=pl.concat_str(pl.lit("MD-"), _codes_text(pl.col("_number"), 6)),
        ITEM_TYPE=pl.when(pl.col("_spare")).then(pl.lit("제품")).otherwise(pl.lit("반제품")),
        ITEM_UNIT=pl.lit("EA"),
        ITEM_GRP1=subtype.replace_strict({"SLEEVE": "C10", "GLAND": "C20", "RETAINER": "C30", "COLLAR": "C40"}),
        MATERIAL_DESC=pl.format("{} 봉재", pl.col("_material")),
    )


def _springs(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Draw ``n`` coil springs, wave springs and welded metal bellows."""
    frame = pl.DataFrame({
        "_family": pl.Series(["SPRING"] * n, dtype=pl.String),
        "_subtype": _choice(rng, n, {"COIL": 0.5, "WAVE": 0.2, "BELLOWS": 0.3}),
        "_raw_spring": _choice(rng, n, {"SUS304": 0.5, "SUS316": 0.25, "HASTELLOY": 0.2, "INCONEL": 0.05}),
        "_raw_bellows": _choice(rng, n, {"AM350": 0.3, "INCONEL": 0.25, "HASTELLOY": 0.35, "SUS316": 0.1}),
        "_multi_spring": pl.Series(rng.random(n) < 0.6),
        "_small_od_mm": np.round(rng.uniform(3, 12, n), 1),
        "_noise": rng.uniform(0, 1, n),
        "_number": _numbers(rng, n),
        "_size_mm": _seal_sizes(rng, n),
        "_arrangement": _choice(rng, n, _PART_ARRANGEMENTS),
        "GROUP1": _choice(rng, n, _APPLICATIONS),
        "IN_SEALTYPE_CD": _choice(rng, n, {"CS1": 0.3, "CP1": 0.3, "CP3": 0.1, "BM1": 0.2, "BH2": 0.1}),
        **_common_columns(rng, n),
    })

    # Multi-spring seals use many small coil springs; single springs and bellows fit the seal size.
    subtype = pl.col("_subtype")
    size = pl.col("_size_mm")
    noise = pl.col("_noise")
    od = (
        pl.when((subtype == "COIL") & pl.col("_multi_spring")).then(pl.col("_small_od_mm"))
        .when(subtype == "COIL").then(size + 8)
        .when(subtype == "WAVE").then(size + 15)
        .otherwise(size + 22)
    )
    inner = (
        pl.when(subtype == "COIL").then((od * 0.7).round(1))
        .when(subtype == "WAVE").then(size + 5)
        .otherwise(size + 4)
    )
    thickness = (
        pl.when(subtype == "COIL").then(8 + noise * 50)
        .when(subtype == "WAVE").then(5 + noise * 15)
        .otherwise(12 + noise * 33)
    )
    frame = frame.with_columns(
        _raw_material=pl.when(subtype == "BELLOWS").then(pl.col("_raw_bellows")).otherwise(pl.col("_raw_spring")),
        _od_mm=od,
        _id_mm=inner,
        _thickness_mm=thickness.round(1),
        _rotary=pl.lit(False),
    ).with_columns(
        _material=pl.col("_raw_material").replace_strict({
            "SUS304": "SUS304-WPB", "SUS316": "SUS316-WPB", "HASTELLOY": "HASTELLOY C276",
            "INCONEL": "INCONEL 718", "AM350": "AM350",
        }),
    )

    name_ko = subtype.replace_strict({"COIL": "코일 스프링", "WAVE": "웨이브 스프링", "BELLOWS": "용접 벨로우즈"})
    return frame.with_columns(
        ITEM_CD=pl.concat_str(
            pl.lit("SP"), _codes_text(pl.col("_number"), 5), pl.lit("-"),
            subtype.replace_strict({"COIL": "CS", "WAVE": "WS", "BELLOWS": "BW"}),
        ),
        ITEM_NM=pl.format("{} {} Ø{}", name_ko, pl.col("_material"), pl.col("_od_mm")),
        ITEM_SPEC=pl.format("Ø{}xØ{}xL{}", pl.col("_od_mm"), pl.col("_id_mm"), pl.col("_thickness_mm")),
        DRAW_NO=pl.concat_str(pl.lit("PD-"), _codes_text(pl.col("_number"), 6)),
        ITEM_TYPE=pl.lit("반제품"),
        ITEM_UNIT=pl.lit("EA"),
        ITEM_GRP1=subtype.replace_strict({"COIL": "D10", "WAVE": "D20", "BELLOWS": "D30"}),
        MATERIAL_DESC=pl.format("{} 선재", pl.col("_material")),
    )


def _elastomers(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """Draw ``n`` bought-in O-rings and gaskets (FKM, NBR, EPDM, FFKM)."""
    frame = pl.DataFrame({
        "_family": pl.Series(["ELASTOMER"] * n, dtype=pl.String),
        "_subtype": _choice(rng, n, {"ORING": 0.75, "GASKET": 0.25}),
        "_material": _choice(rng, n, {"FKM": 0.45, "NBR": 0.2, "EPDM": 0.2, "FFKM": 0.15}),
        "_cross_section": rng.choice(np.array([1.78, 2.62, 3.53, 5.33, 6.99]), size=n),
        "_gasket_thickness": rng.choice(np.array([1.5, 2.0, 3.0]), size=n),
        "_number": _numbers(rng, n),
        "_size_mm": _seal_sizes(rng, n),
        "_arrangement": _choice(rng, n, _PART_ARRANGEMENTS),
        "GROUP1": _choice(rng, n, {"STD": 0.8, "SPECIAL": 0.2}),
        "IN_SEALTYPE_CD": _choice(rng, n, {"CS1": 0.3, "CP1": 0.4, "BM1": 0.3}),
        **_common_columns(rng, n),
    })

    oring = pl.col("_subtype") == "ORING"
    inner = pl.when(oring).then(pl.col("_size_mm")).otherwise(pl.col("_size_mm") + 20)
    frame = frame.with_columns(
        _raw_material=pl.lit("RUBBER"),
        _id_mm=inner,
        _thickness_mm=pl.when(oring).then(pl.col("_cross_section")).otherwise(pl.col("_gasket_thickness")),
        _od_mm=pl.when(oring).then(inner + 2 * pl.col("_cross_section")).otherwise(inner + 30).round(2),
        _rotary=pl.lit(False),
    )

    return frame.with_columns(
        ITEM_CD=pl.format(
            "{}-{}-{}",
            pl.when(oring).then(pl.lit("OR")).otherwise(pl.lit("GK")), pl.col("_material"),
            _codes_text(pl.col("_number"), 5),
        ),
        ITEM_NM=pl.when(oring)
        .then(pl.format("O-링 {} {}x{}", pl.col("_material"), pl.col("_id_mm"), pl.col("_thickness_mm")))
        .otherwise(pl.format("가스켓 {} Ø{}", pl.col("_material"), pl.col("_od_mm"))),
        ITEM_SPEC=pl.format("ID{}xCS{}", pl.col("_id_mm"), pl.col("_thickness_mm")),
        DRAW_NO=pl.concat_str(pl.lit("ED-"), _codes_text(pl.col("_number"), 6)),
        ITEM_TYPE=pl.lit("원자재"),
        ITEM_UNIT=pl.lit("EA"),
        ITEM_GRP1=pl.when(oring).then(pl.lit("E10")).otherwise(pl.lit("E20")),
        MATERIAL_DESC=pl.format("{} 고무", pl.col("_material")),
    )


# Columns every family frame carries: visible attributes and the true (unmasked) ones.
_TRUTH_COLUMNS = [
    "_family", "_subtype", "_raw_material", "_material", "_arrangement", "_standard", "_rotary",
    "_od_mm", "_id_mm", "_thickness_mm", "_size_mm",
    "ITEM_CD", "ITEM_NM", "ITEM_SPEC", "DRAW_NO", "DRAW_REV", "ITEM_TYPE", "ITEM_UNIT", "ITEM_GRP1",
    "GROUP1", "GROUP2", "GROUP3", "ROTATION",
    "IN_SEALTYPE_CD", "MID_SEALTYPE_CD", "OUT_SEALTYPE_CD", "MID_SEALSIZE", "OUT_SEALSIZE", "MATERIAL_DESC",
]
_TRUTH_SCHEMA = {
    "_standard": pl.Boolean, "_rotary": pl.Boolean,
    "_od_mm": pl.Float64, "_id_mm": pl.Float64, "_thickness_mm": pl.Float64, "_size_mm": pl.Float64,
    "MID_SEALSIZE": pl.Float64, "OUT_SEALSIZE": pl.Float64,
}

# ITEM_GRP1 code: the item kind that ``routing_rule`` takes as ``subtype``.
ITEM_GRP1_KINDS: dict[str, str] = {
    "A10": "CARTRIDGE", "A20": "COMPONENT", "A30": "BELLOWS",
    "B10": "SiC", "B20": "CARBON", "B30": "WC",
    "C10": "SLEEVE", "C20": "GLAND", "C30": "RETAINER", "C40": "COLLAR",
    "D10": "COIL", "D20": "WAVE", "D30": "BELLOWS",
    "E10": "ORING", "E20": "GASKET",
}

_GROUP_NAMES = {
    "A10": "카트리지씰", "A20": "컴포넌트씰", "A30": "벨로우즈씰",
    "B10": "씰링면(SiC)", "B20": "씰링면(카본)", "B30": "씰링면(초경)",
    "C10": "슬리브", "C20": "글랜드", "C30": "리테이너", "C40": "칼라",
    "D10": "코일스프링", "D20": "웨이브스프링", "D30": "용접벨로우즈",
    "E10": "O-링", "E20": "가스켓",
}


def _make_items(rng: np.random.Generator, n_items: int) -> pl.DataFrame:
    """Return one row per item with its true attributes (``_`` columns) and raw text columns.

    Rows are in random family order; ``_row`` is the row number.
    """
    shares = np.array(list(FAMILY_SHARES.values()))
    family_idx = rng.choice(len(FAMILIES), size=n_items, p=shares / shares.sum())
    counts = np.bincount(family_idx, minlength=len(FAMILIES))
    makers = {
        "ASSY": _assemblies, "FACE": _faces, "METAL": _metal_parts,
        "SPRING": _springs, "ELASTOMER": _elastomers,
    }
    frames = []
    for family, count in zip(FAMILIES, counts):
        frame = makers[family](rng, int(count))
        for column in _TRUTH_COLUMNS:
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=_TRUTH_SCHEMA.get(column, pl.String)).alias(column))
        frames.append(frame.select(pl.col(c).cast(_TRUTH_SCHEMA.get(c, pl.String)) for c in _TRUTH_COLUMNS))
    items = pl.concat(frames, how="vertical")
    items = items[rng.permutation(n_items)].with_row_index("_row")

    # Outer and middle seals of double and tandem arrangements: always named on the
    # assembly, sometimes on its parts.
    made_in_house = pl.col("_family") != "ELASTOMER"
    double = made_in_house & (pl.col("_arrangement") != "SINGLE")
    outer = double & ((pl.col("_family") == "ASSY") | pl.lit(pl.Series(rng.random(n_items) < 0.4)))
    middle = outer & pl.lit(pl.Series(rng.random(n_items) < 0.3))
    items = items.with_columns(
        OUT_SEALTYPE_CD=pl.when(outer).then(pl.col("IN_SEALTYPE_CD")),
        OUT_SEALSIZE=pl.when(outer).then(pl.col("_size_mm") + 20),
        MID_SEALTYPE_CD=pl.when(middle).then(pl.concat_str(pl.col("IN_SEALTYPE_CD"), pl.lit("M"))),
        MID_SEALSIZE=pl.when(middle).then(pl.col("_size_mm") + 10),
    )

    o_ring = pl.col("ITEM_GRP1") == "E10"
    has_routing = made_in_house & pl.lit(pl.Series(rng.random(n_items) >= NEW_ITEM_RATE))
    return items.with_columns(
        _routed=has_routing,
        _api682=pl.col("GROUP2") == "API682",
        ITEM_GRP1NM=pl.col("ITEM_GRP1").replace_strict(_GROUP_NAMES),
        # O-rings are often bought to inch sizes (AS568); other items rarely carry inches.
        _inch=pl.lit(pl.Series(rng.random(n_items))) < pl.when(o_ring).then(0.15).otherwise(0.03),
    )


# --- item master view ------------------------------------------------------------

# Share of items whose visible value is empty, per column and family (default: the "*" entry).
# The attributes that drive the routing rule are missing for a few percent only.
_MISSING_RATES: dict[str, dict[str, float]] = {
    "ITEM_NM": {"*": 0.002},
    "ITEM_SPEC": {"*": 0.2},
    "DRAW_NO": {"*": 0.35, "ELASTOMER": 0.8},
    "DRAW_REV": {"*": 0.45, "ELASTOMER": 0.85},
    "ITEM_TYPE": {"*": 0.01},
    "PART_TYPE": {"*": 0.02},
    "ITEM_ACCT": {"*": 0.01},
    "ITEM_UNIT": {"*": 0.01},
    "ITEM_GRP1": {"*": 0.02},
    "GROUP1": {"*": 0.2, "ASSY": 0.15, "FACE": 0.05},
    "GROUP2": {"*": 0.3, "ASSY": 0.04},
    "GROUP3": {"*": 0.9},
    "SealTypeGrup": {"*": 0.55, "ASSY": 0.03, "ELASTOMER": 0.85},
    "IN_SEALTYPE_CD": {"*": 0.6, "ASSY": 0.08, "ELASTOMER": 0.85},
    "MID_SEALTYPE_CD": {"*": 0.1},
    "OUT_SEALTYPE_CD": {"*": 0.1},
    "RAW_MATL_KIND": {"*": 0.03},
    "ITEM_MATERIAL": {"*": 0.03},
    "MATERIAL_DESC": {"*": 0.85},
    "OUTDIAMETER": {"*": 0.04, "ASSY": 0.1},
    "INDIAMETER": {"*": 0.08, "ASSY": 0.2},
    "OUTTHICKNESS": {"*": 0.1, "ASSY": 0.4},
    "IN_SEALSIZE": {"*": 0.5, "ASSY": 0.03, "ELASTOMER": 0.9},
    "MID_SEALSIZE": {"*": 0.1},
    "OUT_SEALSIZE": {"*": 0.1},
    "STANDARD_YN": {"*": 0.03},
    "ROTATE_CLOCKWISE": {"*": 0.7, "ASSY": 0.05},
    "ROTATE_CTRCLOCKWISE": {"*": 0.7, "ASSY": 0.05},
}

_MARKER_RATE = 0.05  # share of empty item-master text cells written as a NULL marker
_NULL_MARKERS = {"NULL": 0.8, "-": 0.1, "": 0.1}

_CODE_SPACE_RATE = 0.003  # ITEM_CD with trailing spaces
_CODE_FULL_WIDTH_RATE = 0.001  # ITEM_CD with the full-width hyphen U+FF0D


def _code_variants(rng: np.random.Generator, codes: pl.Series) -> tuple[pl.Series, int, int]:
    """Return ``codes`` with a few trailing spaces and full-width hyphens, and both counts."""
    draw = rng.random(codes.len())
    spaced = draw < _CODE_SPACE_RATE
    full_width = (draw >= _CODE_SPACE_RATE) & (draw < _CODE_SPACE_RATE + _CODE_FULL_WIDTH_RATE)
    frame = pl.DataFrame({"code": codes, "spaced": spaced, "full": full_width})
    out = frame.select(
        pl.when(pl.col("spaced")).then(pl.concat_str(pl.col("code"), pl.lit(" ")))
        .when(pl.col("full")).then(pl.col("code").str.replace("-", "\uff0d", literal=True))
        .otherwise(pl.col("code"))
    ).to_series()
    return out.alias(codes.name), int(spaced.sum()), int(full_width.sum())


def _item_master(rng: np.random.Generator, truth: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Build BI_ITEM_INFO_VIEW from the true attributes: units, flags, sparsity and habits."""
    n = truth.height
    inch = pl.col("_inch")

    def geometry(column: str) -> pl.Expr:
        return pl.when(inch).then((pl.col(column) / 25.4).round(3)).otherwise(pl.col(column))

    def flag(value: pl.Expr, numeric: pl.Expr) -> pl.Expr:
        return (
            pl.when(numeric).then(pl.when(value).then(pl.lit("1")).otherwise(pl.lit("0")))
            .otherwise(pl.when(value).then(pl.lit("Y")).otherwise(pl.lit("N")))
        )

    numeric_flags = pl.lit(pl.Series(rng.random(n) < 0.05))
    rotation = pl.col("ROTATION")
    items = truth.with_columns(
        PART_TYPE=pl.col("_family"),
        ITEM_ACCT=pl.col("ITEM_TYPE").replace_strict({"제품": "10", "반제품": "20", "원자재": "30"}),
        SealTypeGrup=pl.col("_arrangement"),
        RAW_MATL_KIND=pl.col("_raw_material"),
        ITEM_MATERIAL=pl.col("_material"),
        OUTDIAMETER_UNIT=pl.when(inch).then(pl.lit("inch")).otherwise(pl.lit("mm")),
        OUTDIAMETER=geometry("_od_mm"),
        INDIAMETER=geometry("_id_mm"),
        OUTTHICKNESS=geometry("_thickness_mm"),
        IN_SEALSIZE=pl.col("_size_mm"),
        STANDARD_YN=flag(pl.col("_standard"), numeric_flags),
        ROTATE_CLOCKWISE=flag(rotation != "CCW", numeric_flags),
        ROTATE_CTRCLOCKWISE=flag(rotation != "CW", numeric_flags),
    )

    # Sparsity: each listed column loses its value at its family's rate.
    draws = rng.random((len(_MISSING_RATES), n))
    masks = {}
    for i, (column, rates) in enumerate(_MISSING_RATES.items()):
        rate = pl.col("_family").replace_strict(
            {f: rates.get(f, rates["*"]) for f in FAMILIES}, return_dtype=pl.Float64,
        )
        masks[column] = pl.when(pl.lit(pl.Series(draws[i])) < rate).then(None).otherwise(pl.col(column))
    items = items.with_columns(**masks)
    items = items.with_columns(
        OUTDIAMETER_UNIT=pl.when(pl.col("OUTDIAMETER").is_null()).then(None).otherwise(pl.col("OUTDIAMETER_UNIT")),
        ITEM_GRP1NM=pl.when(pl.col("ITEM_GRP1").is_null()).then(None).otherwise(pl.col("ITEM_GRP1NM")),
    )

    # Habit: some empty text cells carry a NULL marker instead of a real null.
    text_columns = [c for c in ITEM_COLUMNS if c != "ITEM_CD" and items.schema[c] == pl.String]
    marker_draws = rng.random((len(text_columns), n))
    marker_values = _choice(rng, n, _NULL_MARKERS)
    null_strings = 0
    replaced = {}
    for i, column in enumerate(text_columns):
        hit = items[column].is_null() & pl.Series(marker_draws[i] < _MARKER_RATE)
        null_strings += int(hit.sum())
        replaced[column] = pl.when(pl.lit(hit)).then(pl.lit(marker_values)).otherwise(pl.col(column))
    items = items.with_columns(**replaced)

    codes, spaced, full_width = _code_variants(rng, items["ITEM_CD"])
    items = items.with_columns(codes)
    habits = {
        "null_strings": null_strings,
        "code_trailing_space": spaced,
        "code_full_width": full_width,
        "inch_items": int(truth["_inch"].sum()),
    }
    return items.select(ITEM_COLUMNS), habits


# --- routing plan ----------------------------------------------------------------

# ``routing_rule`` compares OUTDIAMETER with these bounds and IN_SEALSIZE with the seal-size
# bound only, so every item gets the rule of its band's lower bound.
_DIAMETER_BANDS_MM = (20.0, 80.0, 150.0)
_SEAL_SIZE_BANDS_MM = (100.0,)
_RULE_COLUMNS = [
    "_family", "_subtype", "_raw_material", "_material", "_arrangement",
    "_api682", "_standard", "_rotary", "_od_band", "_size_band",
]


def _band(column: str, bounds: tuple[float, ...]) -> pl.Expr:
    """Return the greatest bound not above the value, or 0."""
    expr = pl.lit(0.0)
    for bound in bounds:
        expr = pl.when(pl.col(column) >= bound).then(pl.lit(bound)).otherwise(expr)
    return expr


@dataclass
class _RoutingPlan:
    """Routings to write, one row per item version, and the sequence table they refer to.

    ``routes`` columns: _row (item row, or the source item's row for orphans), ITEM_CD as
    written in the routing view, ROUT_NO, MAJOR_FLG, VALID_FROM_DT and VALID_TO_DT (Date),
    _sequence (sequence id), _active (the version validation must choose), _orphan.
    ``active`` contains one row per routed item with _rule_sequence, _sequence and _deviation.
    """

    routes: pl.DataFrame
    active: pl.DataFrame
    table: _SequenceTable
    n_rule_sequences: int
    code_variants: dict[str, int]


def _plan_routings(rng: np.random.Generator, truth: pl.DataFrame) -> _RoutingPlan:
    """Choose every routed item's rule sequence, deviation, versions and validity windows."""
    table = _SequenceTable()
    routed = truth.filter(pl.col("_routed")).with_columns(
        _od_band=_band("_od_mm", _DIAMETER_BANDS_MM),
        _size_band=_band("_size_mm", _SEAL_SIZE_BANDS_MM),
    )
    m = routed.height

    # Rule sequence per distinct combination of rule attributes.
    combos = routed.select(_RULE_COLUMNS).unique(maintain_order=True)
    rule_ids = [
        table.intern(routing_rule(
            family=row["_family"], subtype=row["_subtype"],
            raw_material=row["_raw_material"], material=row["_material"], arrangement=row["_arrangement"],
            api682=row["_api682"], standard=row["_standard"], rotary=row["_rotary"],
            outdiameter_mm=row["_od_band"], seal_size_mm=row["_size_band"],
        ))
        for row in combos.iter_rows(named=True)
    ]
    n_rule_sequences = len(set(rule_ids))
    combos = combos.with_columns(_rule_sequence=pl.Series(rule_ids, dtype=pl.Int64))
    routed = routed.join(combos, on=_RULE_COLUMNS, how="left", nulls_equal=True, maintain_order="left")

    # Deviations from the rule.
    deviates = rng.random(m) < DEVIATION_RATE
    kinds = rng.choice([_EXTRA, _MISSING, _SWAP, _ALTERNATIVE], size=m, p=[0.3, 0.25, 0.15, 0.3])
    routed = routed.with_columns(
        _deviation=pl.Series(np.where(deviates, kinds, 0), dtype=pl.Int64),
        _deviation_position=pl.Series(rng.integers(0, 8, m), dtype=pl.Int64),
        _deviation_choice=pl.Series(rng.integers(0, 3, m), dtype=pl.Int64),
    )
    routed = _apply_deviations(routed, table, "_rule_sequence", "_deviation", "_sequence")

    # Older versions: a different sequence, replaced by the active one.
    older = rng.random(m) < OLDER_ROUTING_RATE
    older_kinds = rng.choice([_EXTRA, _MISSING, _ALTERNATIVE], size=m, p=[0.3, 0.4, 0.3])
    routed = routed.with_columns(
        _older_deviation=pl.Series(np.where(older, older_kinds, 0), dtype=pl.Int64),
        _deviation_position=pl.Series(rng.integers(0, 8, m), dtype=pl.Int64),
        _deviation_choice=pl.Series(rng.integers(0, 3, m), dtype=pl.Int64),
    )
    routed = _apply_deviations(routed, table, "_sequence", "_older_deviation", "_older_sequence")

    routes, code_variants = _route_versions(rng, routed)
    active = routed.select("_row", "_family", "_rule_sequence", "_sequence", "_deviation")
    return _RoutingPlan(routes, active, table, n_rule_sequences, code_variants)


def _apply_deviations(
    frame: pl.DataFrame, table: _SequenceTable, source: str, kind: str, target: str,
) -> pl.DataFrame:
    """Set ``target`` to the sequence ``source`` changed by deviation ``kind`` (0: unchanged)."""
    keys = [source, kind, "_deviation_position", "_deviation_choice", "_family"]
    combos = frame.filter(pl.col(kind) > 0).select(keys).unique(maintain_order=True)
    new_ids = [
        table.intern(_deviate(table.sequences[row[0]], row[1], row[2], row[3], row[4]))
        for row in combos.iter_rows()
    ]
    combos = combos.with_columns(pl.Series(target, new_ids, dtype=pl.Int64))
    frame = frame.join(combos, on=keys, how="left", maintain_order="left")
    return frame.with_columns(pl.col(target).fill_null(pl.col(source)))


def _date_series(values: np.ndarray) -> pl.Series:
    return pl.Series(values.astype("datetime64[D]"))


def _route_versions(rng: np.random.Generator, routed: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Return one row per routing version, with ROUT_NO, MAJOR_FLG and validity window.

    An older version is one of three kinds:

    - MAJOR_FLG N and still valid;
    - MAJOR_FLG Y but expired the day before the active version starts;
    - MAJOR_FLG Y and open-ended, but starting earlier than the active version.

    Validation picks the active version in every case, because only it has MAJOR_FLG Y,
    is valid on AS_OF_DATE and has the latest VALID_FROM_DT (and the greatest ROUT_NO).
    """
    m = routed.height
    as_of = np.datetime64(AS_OF_DATE, "D")
    migration = np.datetime64("2001-01-01", "D")
    has_old = (routed["_older_deviation"] > 0).to_numpy()

    # ROUT_NO: "01"/"02" style or the "B#1L00C" style; the newer version sorts last.
    letter_style = rng.random(m) < 0.4
    letter = rng.integers(0, 4, m)
    letter = np.where(has_old, np.maximum(letter, 1), letter)
    letters = np.array(list("ABCD"))
    active_no = np.where(letter_style, np.char.add("B#1L00", letters[letter]), np.where(has_old, "02", "01"))
    old_no = np.where(letter_style, np.char.add("B#1L00", letters[np.maximum(letter - 1, 0)]), "01")

    # Validity: many routings date from the ERP migration, the others from a later day.
    span = int((as_of - np.datetime64("2003-01-01", "D")).astype(int)) - 30
    later_from = np.datetime64("2003-01-01", "D") + rng.integers(0, span, m)
    active_from = np.where(rng.random(m) < 0.55, migration, later_from)
    active_from = np.where(has_old, np.maximum(later_from, migration + 400), active_from)
    old_from = np.where(rng.random(m) < 0.6, migration, migration + rng.integers(0, 300, m))
    old_kind = rng.choice(3, size=m, p=[0.45, 0.4, 0.15])  # 0 not major, 1 expired, 2 both major
    open_end = np.datetime64(OPEN_END_DATE, "D")
    old_to = np.where(old_kind == 1, active_from - 1, open_end)
    old_major = np.where(old_kind == 0, "N", "Y")

    codes, spaced, full_width = _code_variants(rng, routed["ITEM_CD"])
    active = pl.DataFrame({
        "_row": routed["_row"],
        "ITEM_CD": codes,
        "ROUT_NO": pl.Series(active_no.astype(str)),
        "MAJOR_FLG": pl.Series(["Y"] * m, dtype=pl.String),
        "VALID_FROM_DT": _date_series(active_from),
        "VALID_TO_DT": _date_series(np.full(m, open_end)),
        "_sequence": routed["_sequence"],
        "_active": pl.Series([True] * m, dtype=pl.Boolean),
        "_orphan": pl.Series([False] * m, dtype=pl.Boolean),
    })
    old = pl.DataFrame({
        "_row": routed["_row"],
        "ITEM_CD": codes,
        "ROUT_NO": pl.Series(old_no.astype(str)),
        "MAJOR_FLG": pl.Series(old_major.astype(str)),
        "VALID_FROM_DT": _date_series(old_from),
        "VALID_TO_DT": _date_series(old_to),
        "_sequence": routed["_older_sequence"],
        "_active": pl.Series([False] * m, dtype=pl.Boolean),
        "_orphan": pl.Series([False] * m, dtype=pl.Boolean),
    }).filter(pl.Series(has_old))

    # Orphans: routings of items deleted from the master, copied from random active ones.
    n_orphans = max(1, round(m * 0.001)) if m else 0
    source = rng.choice(m, size=n_orphans, replace=False) if m else np.array([], dtype=np.int64)
    orphans = active[source].with_columns(
        ITEM_CD=pl.concat_str(pl.lit("Z"), _codes_text(pl.Series(np.arange(1, n_orphans + 1)), 6), pl.lit("-OB")),
        _active=pl.lit(False),
        _orphan=pl.lit(True),
    )
    routes = pl.concat([active, old, orphans], how="vertical")
    # Versions of one item sit together, older first, as an ERP listing sorted by key shows them.
    routes = routes.sort(["_orphan", "_row", "ROUT_NO"], maintain_order=True)
    return routes, {"code_trailing_space": spaced, "code_full_width": full_width}


# --- routing rows ----------------------------------------------------------------


@dataclass
class _Operations:
    """Operation rows of every routing in ``_RoutingPlan.routes`` order, as numpy arrays."""

    route: np.ndarray  # index into routes
    position: np.ndarray  # 0-based position in the sequence
    length: np.ndarray  # operations in the routing
    job: np.ndarray  # index into JOBS
    resource: np.ndarray  # index into RESOURCE_CODES
    setup_min: np.ndarray
    run_min: np.ndarray
    queue_min: np.ndarray
    wait_min: np.ndarray
    move_min: np.ndarray
    run_time_qty: np.ndarray
    mfg_lt_days: np.ndarray
    proc_seq: np.ndarray


def _job_array(attribute: str, dtype=None) -> np.ndarray:
    return np.array([getattr(job, attribute) for job in JOBS], dtype=dtype)


def _expand_operations(rng: np.random.Generator, truth: pl.DataFrame, plan: _RoutingPlan) -> _Operations:
    """Explode every routing into its operations with planned minutes and resources."""
    lengths, starts, flat = plan.table.flat_job_indices()
    route_seq = plan.routes["_sequence"].to_numpy()
    n_ops = lengths[route_seq] if route_seq.size else np.array([], dtype=np.int64)
    route = np.repeat(np.arange(route_seq.size), n_ops)
    first = np.cumsum(n_ops) - n_ops
    position = np.arange(route.size) - first[route]
    job = flat[starts[route_seq[route]] + position]
    total = route.size

    # Item attributes per operation.
    item_row = plan.routes["_row"].to_numpy()[route]
    assembly = (truth["_family"] == "ASSY").to_numpy()[item_row]
    od = truth["_od_mm"].fill_null(50.0).to_numpy()[item_row]
    size = truth["_size_mm"].fill_null(50.0).to_numpy()[item_row]
    hardness = truth["_raw_material"].replace_strict(HARDNESS, default=1.0, return_dtype=pl.Float64)
    hardness = hardness.to_numpy()[item_row]
    double = (truth["_arrangement"] != "SINGLE").fill_null(False).to_numpy()[item_row]

    setup, run, rtq = _planned_minutes(rng, job, assembly, od, size, hardness, double)

    # Queue, wait and move follow the job's ERP defaults; a few routings use other values.
    queue = _job_array("queue_min", float)[job]
    wait = _job_array("wait_min", float)[job]
    move = _job_array("move_min", float)[job]
    other_defaults = (rng.random(route_seq.size) < 0.1)[route]
    wait = np.where(other_defaults, np.round(wait * 0.5), wait)
    move = np.where(other_defaults, np.round(move * 0.75), move)

    kinds = _job_array("kind")[job]
    outside = kinds == "out"
    mfg_lt = np.where(outside, _job_array("mfg_lt_days", np.int64)[job] + rng.integers(-1, 3, total), 0)

    resource = _choose_resources(rng, job, od)

    # PROC_SEQ 10, 20, 30 ... with a 10-step gap after some operation in a few routings.
    gap_at = np.where(rng.random(route_seq.size) < 0.04, rng.integers(1, 8, route_seq.size), 99)[route]
    proc_seq = (position + 1) * 10 + np.where(position >= gap_at, 10, 0)

    return _Operations(
        route=route, position=position, length=n_ops[route], job=job, resource=resource,
        setup_min=setup, run_min=run, queue_min=queue, wait_min=wait, move_min=move,
        run_time_qty=rtq, mfg_lt_days=mfg_lt, proc_seq=proc_seq,
    )


def _planned_minutes(
    rng: np.random.Generator, job: np.ndarray, assembly: np.ndarray, od: np.ndarray, size: np.ndarray,
    hardness: np.ndarray, double: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (SETUP_TIME, RUN_TIME, RUN_TIME_QTY): minutes grow with size and hardness.

    Sizes are the outside diameter for parts and the seal size for assemblies. RUN_TIME is
    the time for RUN_TIME_QTY pieces: small parts are run in lots of 10 or 100 on the lot
    operations (lapping, washing, forming, heat treatment, spring inspection).
    """
    total = job.size
    kinds = _job_array("kind")[job]
    base_setup = _job_array("setup_min", float)[job]
    base_run = _job_array("run_min", float)[job]
    codes = _job_array("code")[job]
    scale_mm = np.where(assembly, size, od)
    size_factor = np.clip((scale_mm / 50.0) ** 0.8, 0.35, 5.0)
    noise = rng.lognormal(0.0, 0.15, total)

    exponent = np.select(
        [kinds == "mach", kinds == "lap", np.isin(kinds, ["asm", "test"]), kinds == "insp",
         kinds == "form", kinds == "pack", kinds == "wash"],
        [1.0, 1.0, 0.6, 0.4, 0.5, 0.5, 0.3],
        default=0.0,
    )
    material_factor = np.select(
        [np.isin(kinds, ["mach", "lap"]), kinds == "form"], [hardness, np.sqrt(hardness)], default=1.0,
    )
    run_piece = base_run * size_factor**exponent * material_factor * np.where(double & (kinds == "asm"), 1.6, 1.0)
    run_piece = run_piece * noise

    lot_kind = np.isin(kinds, ["lap", "wash", "heat"])
    lot_job = lot_kind | np.isin(codes, ["Q10-1", "Q30-4", "S10-1", "S11-1", "S30-1"])
    rtq = np.where(lot_job & (od < 45), 10, 1)
    rtq = np.where(np.isin(codes, ["S10-1", "S20-1", "S30-1", "Q30-4"]) & (od < 20), 100, rtq)
    rtq = np.where(kinds == "heat", np.where(od < 45, 100, 10), rtq)  # a furnace load
    # Heat treatment time is per furnace load, whatever the lot size.
    run = np.where(kinds == "heat", base_run * noise, run_piece * np.where(rtq > 1, rtq * 0.7, 1.0))
    run = np.where(kinds == "out", 0.0, np.maximum(np.round(run), 1.0))

    setup_scale = np.where(np.isin(kinds, ["mach", "lap"]), (0.8 + 0.2 * size_factor) * hardness**0.3, 1.0)
    setup = np.round(base_setup * setup_scale * noise / 5.0) * 5.0
    return setup, run, rtq


def _option_table(options: list[tuple[str, ...]], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return per job its options as indices (padded with the first) and the option count."""
    width = max(len(o) for o in options)
    table = np.array([[index[c] for c in o] + [index[o[0]]] * (width - len(o)) for o in options], dtype=np.int64)
    return table, np.array([len(o) for o in options], dtype=np.int64)


def _choose_resources(rng: np.random.Generator, job: np.ndarray, od: np.ndarray) -> np.ndarray:
    """Pick a RESOURCE_CODES index per operation; large parts go to the job's large resource."""
    table, counts = _option_table([j.resources for j in JOBS], _RESOURCE_INDEX)
    large = np.array([_RESOURCE_INDEX.get(j.large_resource, -1) for j in JOBS], dtype=np.int64)
    pick = table[job, rng.integers(0, 1 << 30, job.size) % counts[job]]
    pick = np.where((large[job] >= 0) & (od >= 150), large[job], pick)
    # A few CNC operations still sit on the unassigned CNC queue.
    cnc = np.isin(_job_array("code")[job], ["M10-1", "M10-2", "M10-5"])
    return np.where(cnc & (rng.random(job.size) < 0.01), _RESOURCE_INDEX["CNC-대기"], pick)


def _number_text(values: np.ndarray) -> pl.Series:
    """Format numbers as an ERP CSV export does: integers without decimals, others rounded to 4."""
    series = pl.Series(np.round(values.astype(np.float64), 4))
    return pl.select(
        pl.when(series == series.round(0)).then(series.cast(pl.Int64).cast(pl.String))
        .otherwise(series.cast(pl.String))
    ).to_series()


_ROUTING_NULL_COLUMNS = ["WC_CD", "RES_DIS", *ROUTING_TIME_COLUMNS, "MFG_LT", "MILESTONE_FLG"]
_ROUTING_NULL_RATE = 0.0015  # per column and row
_OUT_OF_ORDER_RATE = 0.015  # routings with two rows stored in swapped order
_DUPLICATE_RATE = 0.005  # routing rows repeated exactly
_ABSURD_RATE = 0.0002  # rows with a negative or absurd RUN_TIME
_UNIT_RATE = 0.015  # routings written in a unit other than "M"
_UNKNOWN_UNIT_RATE = 0.0005  # routings written in a unit the schema does not know
_KOREAN_INSIDE_FLAG_RATE = 0.03  # routings that spell INSIDE_FLAG 사내/외주


def _routing_view(
    rng: np.random.Generator, plan: _RoutingPlan, ops: _Operations,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Build BI_ROUTING_VIEW as String columns and inject the export habits."""
    routes = plan.routes
    n_routes = routes.height
    total = ops.route.size
    kinds = _job_array("kind")[ops.job]
    outside = kinds == "out"

    # TIME_UNIT per routing; the values are converted so the minutes stay the same.
    units = ["M", *OTHER_TIME_UNITS, *UNKNOWN_TIME_UNITS]
    unit_draw = rng.random(n_routes)
    other_unit = rng.integers(1, 1 + len(OTHER_TIME_UNITS), n_routes)
    unknown_unit = rng.integers(1 + len(OTHER_TIME_UNITS), len(units), n_routes)
    route_unit = np.where(unit_draw < _UNIT_RATE, other_unit, 0)
    unknown = (unit_draw >= _UNIT_RATE) & (unit_draw < _UNIT_RATE + _UNKNOWN_UNIT_RATE)
    route_unit = np.where(unknown, unknown_unit, route_unit)
    to_unit = np.array([1.0, *OTHER_TIME_UNITS.values(), *[1.0] * len(UNKNOWN_TIME_UNITS)])
    op_unit = route_unit[ops.route]
    factor = to_unit[op_unit]

    # Negative or absurd RUN_TIME on a handful of minute rows.
    # NOTE: validation that rejects these rows drops an operation from up to about 0.1 % of
    # active routings, so the reachable top-1 accuracy is up to that much below
    # noise_ceiling_top1.
    run_min = ops.run_min.copy()
    minute_rows = np.flatnonzero(op_unit == 0)
    n_absurd = min(minute_rows.size, max(2, round(total * _ABSURD_RATE)))
    absurd_rows = rng.choice(minute_rows, size=n_absurd, replace=False)
    run_min[absurd_rows] = np.where(rng.random(n_absurd) < 0.5, -run_min[absurd_rows], 99999.0)

    # The inspection step often has no work centre, as in the ERP's own rows.
    work_centres = [RESOURCES[c][1] for c in RESOURCE_CODES] + ["NULL"]
    wc = np.where((kinds == "insp") & (rng.random(total) < 0.7), len(RESOURCE_CODES), ops.resource)
    vendor_codes = sorted({v for j in JOBS for v in j.vendors} | {"NULL"})
    vendor_table, vendor_counts = _option_table(
        [j.vendors or ("NULL",) for j in JOBS], {v: i for i, v in enumerate(vendor_codes)},
    )
    vendor = vendor_table[ops.job, rng.integers(0, 1 << 30, total) % vendor_counts[ops.job]]
    korean_flag = (rng.random(n_routes) < _KOREAN_INSIDE_FLAG_RATE)[ops.route]
    inside = outside.astype(np.int64) + 2 * korean_flag  # index into ["Y", "N", "사내", "외주"]
    rout_order = np.where(ops.position == 0, 0, np.where(ops.position == ops.length - 1, 2, 1))

    # Habit: NULL markers replace present values in a few cells (decided per operation).
    marker_values = list(_NULL_MARKERS)
    marker_p = np.array(list(_NULL_MARKERS.values()))
    marker = rng.choice(len(marker_values), size=total, p=marker_p / marker_p.sum())
    null_hits = {c: rng.random(total) < _ROUTING_NULL_RATE for c in _ROUTING_NULL_COLUMNS}
    null_hits["WC_CD"] &= wc != len(RESOURCE_CODES)

    # Row order: routings in plan order, operations by position, except a few swapped
    # pairs; each exact duplicate follows its original.
    route_len = np.bincount(ops.route, minlength=n_routes)
    swap_route = (rng.random(n_routes) < _OUT_OF_ORDER_RATE) & (route_len >= 3)
    swap_at = (rng.integers(0, 1 << 30, n_routes) % np.maximum(route_len - 1, 1))[ops.route]
    swapped = swap_route[ops.route]
    order = ops.route.astype(np.float64) * 1000 + ops.position
    order = np.where(swapped & (ops.position == swap_at), order + 1, order)
    order = np.where(swapped & (ops.position == swap_at + 1), order - 1, order)
    duplicate = np.flatnonzero(rng.random(total) < _DUPLICATE_RATE)
    keys = np.concatenate([order, order[duplicate] + 0.5])
    src = np.concatenate([np.arange(total), duplicate])[np.argsort(keys, kind="stable")]

    route = ops.route[src]
    times = {
        "SETUP_TIME": ops.setup_min, "RUN_TIME": run_min, "QUEUE_TIME": ops.queue_min,
        "WAIT_TIME": ops.wait_min, "MOVE_TIME": ops.move_min,
    }
    frame = pl.DataFrame({
        "ITEM_CD": routes["ITEM_CD"].gather(route),
        "ROUT_NO": routes["ROUT_NO"].gather(route),
        "PROC_SEQ": _number_text(ops.proc_seq[src]),
        "JOB_CD": _text(_job_array("code").tolist(), ops.job[src]),
        "JOB_NM": _text(_job_array("name").tolist(), ops.job[src]),
        "RES_CD": _text(RESOURCE_CODES, ops.resource[src]),
        "RES_DIS": _text([RESOURCES[c][0] for c in RESOURCE_CODES], ops.resource[src]),
        "WC_CD": _text(work_centres, wc[src]),
        "INSIDE_FLAG": _text(["Y", "N", "사내", "외주"], inside[src]),
        "TIME_UNIT": _text(units, op_unit[src]),
        **{c: _number_text((v * factor)[src]) for c, v in times.items()},
        "RUN_TIME_QTY": _number_text(ops.run_time_qty[src]),
        "MFG_LT": _number_text(ops.mfg_lt_days[src]),
        "INSP_FLG": _text(["N", "Y"], (kinds == "insp").astype(np.int64)[src]),
        "MILESTONE_FLG": _text(["Y", "N"], (kinds == "wash").astype(np.int64)[src]),
        "ROUT_ORDER": _text(["F", "I", "L"], rout_order[src]),
        "BP_CD": _text(vendor_codes, vendor[src]),
        "MAJOR_FLG": routes["MAJOR_FLG"].gather(route),
        "VALID_FROM_DT": routes["VALID_FROM_DT"].dt.strftime("%Y-%m-%d 00:00:00.000").gather(route),
        "VALID_TO_DT": routes["VALID_TO_DT"].dt.strftime("%Y-%m-%d 00:00:00.000").gather(route),
    })
    markers = _text(marker_values, marker[src])
    frame = frame.with_columns(**{
        c: pl.when(pl.lit(pl.Series(hit[src]))).then(pl.lit(markers)).otherwise(pl.col(c))
        for c, hit in null_hits.items()
    })

    habits = {
        "null_strings": int(sum(hit[src].sum() for hit in null_hits.values())),
        "non_minute_time_unit_rows": int(((op_unit > 0) & (op_unit <= len(OTHER_TIME_UNITS))).sum()),
        "unknown_time_unit_rows": int((op_unit > len(OTHER_TIME_UNITS)).sum()),
        "out_of_order_routings": int(swap_route.sum()),
        "duplicated_rows": int(duplicate.size),
        "absurd_time_rows": int(n_absurd),
        "orphan_routing_rows": int(routes["_orphan"].to_numpy()[ops.route].sum()),
    }
    return frame.select(ROUTING_COLUMNS), habits


# --- work orders -----------------------------------------------------------------

_POPULAR_RATE = 0.10  # routed items with 3-30 orders; the others have a few or none
_UNREPORTED_RATE = 0.02  # operations of an order never reported


def _work_orders(
    rng: np.random.Generator, truth: pl.DataFrame, plan: _RoutingPlan, ops: _Operations,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Build BI_WORK_ORDER_RESULTS: reported in-house operations of orders on active routings.

    Hours are order totals scattered (lognormal) around the planned setup and the planned
    run time times the good quantity (the order quantity when nothing was good).
    """
    routes = plan.routes
    active_routes = np.flatnonzero(routes["_active"].to_numpy())
    kinds = _job_array("kind")[ops.job]
    reported = routes["_active"].to_numpy()[ops.route] & (kinds != "out")
    report_ops = np.flatnonzero(reported)  # sorted by route, then position
    per_route = np.bincount(ops.route[report_ops], minlength=routes.height)
    route_first = np.cumsum(per_route) - per_route

    # Orders per active routing: many none, popular items 3-30.
    m = active_routes.size
    popular = rng.random(m) < _POPULAR_RATE
    n_orders = np.where(popular, rng.integers(3, 31, m), rng.poisson(0.5, m))
    order_route = np.repeat(active_routes, n_orders)
    n = order_route.size

    as_of = np.datetime64(AS_OF_DATE, "D")
    valid_from = routes["VALID_FROM_DT"].to_numpy().astype("datetime64[D]")[order_route]
    window_start = np.maximum(as_of - 3 * 365, valid_from)
    window_days = np.maximum((as_of - 14 - window_start).astype(np.int64), 1)
    order_day = window_start + (rng.random(n) * window_days).astype(np.int64)
    # Assemblies are ordered a few at a time; parts in lots that shrink as the parts grow.
    item_row = routes["_row"].to_numpy()[order_route]
    assembly = (truth["_family"] == "ASSY").to_numpy()[item_row]
    od = truth["_od_mm"].fill_null(50.0).to_numpy()[item_row]
    typical_qty = np.where(assembly, 3.0, np.clip(40.0 * 50.0 / np.maximum(od, 1.0), 2.0, 150.0))
    order_qty = np.round(rng.lognormal(np.log(typical_qty), 0.9, n))
    order_qty = np.clip(order_qty, 1, np.minimum(500, np.ceil(typical_qty * 8)))

    # One row per reported operation of each order.
    rows_per_order = per_route[order_route]
    order_of_row = np.repeat(np.arange(n), rows_per_order)
    step = np.arange(order_of_row.size) - (np.cumsum(rows_per_order) - rows_per_order)[order_of_row]
    op = report_ops[route_first[order_route[order_of_row]] + step]
    keep = rng.random(op.size) >= _UNREPORTED_RATE
    order_of_row, step, op = order_of_row[keep], step[keep], op[keep]
    rows = op.size

    qty = order_qty[order_of_row]
    bad_draw = rng.random(rows)
    some_bad = np.minimum(rng.integers(1, 6, rows), qty - 1)  # 0 when the order is a single piece
    bad = np.where(bad_draw < 0.003, qty, np.where(bad_draw < 0.06, some_bad, 0.0))
    good = qty - bad
    setup_hours = ops.setup_min[op] / 60 * rng.lognormal(0.0, 0.35, rows)
    run_per_piece = ops.run_min[op] / ops.run_time_qty[op]
    worked_qty = np.where(good > 0, good, qty)
    machine_hours = run_per_piece * worked_qty / 60 * rng.lognormal(0.0, 0.3, rows)
    report_day = order_day[order_of_row] + step

    frame = pl.DataFrame({
        "ITEM_CD": routes["ITEM_CD"].gather(ops.route[op]),
        "ROUT_NO": routes["ROUT_NO"].gather(ops.route[op]),
        "PROC_SEQ": pl.Series(ops.proc_seq[op], dtype=pl.Int64),
        "JOB_CD": _text(_job_array("code").tolist(), ops.job[op]),
        "RES_CD": pl.Series(RESOURCE_CODES, dtype=pl.String).gather(ops.resource[op]),
        "REPORT_DT": _date_series(report_day).cast(pl.Datetime("ms")),
        "SETUP_HOURS": np.round(setup_hours, 4),
        "MACH_WORKED_HOURS": np.round(machine_hours, 4),
        "ORDER_QTY": qty.astype(np.float64),
        "BAD_QTY": bad.astype(np.float64),
    })
    counts = {"orders": int(n), "zero_good_quantity_rows": int((good == 0).sum())}
    return frame.select(WORK_ORDER_COLUMNS), counts


# --- report ----------------------------------------------------------------------


def _make_report(
    n_items: int, seed: int, truth: pl.DataFrame, plan: _RoutingPlan, routings: pl.DataFrame,
    work_orders: pl.DataFrame, item_habits: dict[str, int], routing_habits: dict[str, int],
    work_order_counts: dict[str, int],
) -> SampleReport:
    active = plan.active
    n_routed = active.height
    deviating = int((active["_sequence"] != active["_rule_sequence"]).sum())
    deviation_share = deviating / n_routed if n_routed else 0.0
    kind_counts = active.filter(pl.col("_deviation") > 0)["_deviation"].value_counts(sort=True)
    deviation_counts = {name: 0 for name in DEVIATION_KINDS.values()}
    for kind, count in kind_counts.iter_rows():
        deviation_counts[DEVIATION_KINDS[kind]] = int(count)
    family_counts = {f: int((truth["_family"] == f).sum()) for f in FAMILIES}
    family_routed = {f: int((active["_family"] == f).sum()) for f in ROUTED_FAMILIES}
    return SampleReport(
        n_items=n_items,
        seed=seed,
        n_items_with_routing=n_routed,
        n_routings=int((~plan.routes["_orphan"]).sum()),
        n_older_routings=int((~plan.routes["_active"] & ~plan.routes["_orphan"]).sum()),
        n_routing_rows=routings.height,
        n_work_orders=work_order_counts["orders"],
        n_work_order_rows=work_orders.height,
        family_counts=family_counts,
        family_routed_counts=family_routed,
        n_rule_sequences=plan.n_rule_sequences,
        n_active_sequences=int(active["_sequence"].n_unique()) if n_routed else 0,
        deviation_counts=deviation_counts,
        deviation_share=round(deviation_share, 6),
        noise_ceiling_top1=round(1.0 - deviation_share, 6),
        null_string_cells={ITEM_VIEW: item_habits["null_strings"], ROUTING_VIEW: routing_habits["null_strings"]},
        non_minute_time_unit_rows=routing_habits["non_minute_time_unit_rows"],
        unknown_time_unit_rows=routing_habits["unknown_time_unit_rows"],
        out_of_order_routings=routing_habits["out_of_order_routings"],
        duplicated_rows=routing_habits["duplicated_rows"],
        absurd_time_rows=routing_habits["absurd_time_rows"],
        orphan_routing_rows=routing_habits["orphan_routing_rows"],
        item_code_variants={
            f"{ITEM_VIEW}.trailing_space": item_habits["code_trailing_space"],
            f"{ITEM_VIEW}.full_width": item_habits["code_full_width"],
            f"{ROUTING_VIEW}.trailing_space": plan.code_variants["code_trailing_space"],
            f"{ROUTING_VIEW}.full_width": plan.code_variants["code_full_width"],
        },
        inch_items=item_habits["inch_items"],
        zero_good_quantity_rows=work_order_counts["zero_good_quantity_rows"],
    )
