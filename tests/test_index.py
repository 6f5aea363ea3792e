"""FAISS index edge cases: real faiss-cpu, no mocks."""

import numpy as np
import pytest

from routing_core.errors import DataError
from routing_core.index import ItemIndex


def _unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def index() -> ItemIndex:
    return ItemIndex.build(_unit_rows(5, 4), [f"I{i}" for i in range(5)])


def test_k_larger_than_index(index):
    sims, codes = index.search(_unit_rows(1, 4, seed=1), k=50)
    assert codes.shape == (1, 5)
    assert sorted(codes[0].tolist()) == [f"I{i}" for i in range(5)]


def test_k_larger_with_exclusion_pads_with_none(index):
    sims, codes = index.search(index.index.reconstruct_n(0, 1), k=50, exclude=["I0"])
    assert "I0" not in codes[0].tolist()
    assert codes[0].tolist()[-1] is None
    assert np.isnan(sims[0, -1])


def test_identical_item_scores_at_most_one():
    rows = np.tile(_unit_rows(1, 8), (3, 1)) * np.float32(1.0000001)
    idx = ItemIndex.build(rows, ["A", "B", "C"])
    sims, _ = idx.search(rows[:1], k=3)
    assert sims.max() <= 1.0
    assert sims.min() == pytest.approx(1.0, abs=1e-5)


def test_own_item_excluded(index):
    query = index.index.reconstruct_n(2, 1)
    _, codes = index.search(query, k=3, exclude=["I2"])
    assert "I2" not in codes[0].tolist()
    assert len([c for c in codes[0] if c is not None]) == 3


def test_float64_and_non_contiguous_input(index):
    wide = np.asfortranarray(_unit_rows(3, 4, seed=3).astype(np.float64))
    sims, codes = index.search(wide[:, :], k=2)
    assert sims.dtype == np.float32
    assert codes.shape == (3, 2)
    strided = np.repeat(_unit_rows(3, 4, seed=3), 2, axis=0)[::2]
    assert not strided.flags["C_CONTIGUOUS"] or strided.base is not None
    assert index.search(strided, k=2)[1].shape == (3, 2)


def test_nan_and_inf_rejected(index):
    bad = _unit_rows(2, 4)
    bad[1, 2] = np.nan
    with pytest.raises(DataError, match="rows \\[1\\]"):
        index.search(bad, k=2)
    bad[1, 2] = np.inf
    with pytest.raises(DataError):
        index.search(bad, k=2)


def test_wrong_dimension_rejected(index):
    with pytest.raises(DataError, match="expected"):
        index.search(np.zeros((1, 3), np.float32), k=1)


def test_minus_one_ids_become_none():
    idx = ItemIndex.build(_unit_rows(3, 4), ["A", "B", "C"], kind="hnsw")
    sims, codes = idx.search(_unit_rows(1, 4, seed=9), k=3)
    assert all(c is None or c in {"A", "B", "C"} for c in codes[0])


def test_bytes_round_trip_with_hangul_path(tmp_path, index):
    folder = tmp_path / "모델 버전"
    folder.mkdir()
    (folder / "index.faiss").write_bytes(index.to_bytes())
    again = ItemIndex.from_bytes((folder / "index.faiss").read_bytes(), index.item_codes)
    q = _unit_rows(1, 4, seed=5)
    assert np.array_equal(index.search(q, 3)[1], again.search(q, 3)[1])


def test_empty_index_returns_empty():
    idx = ItemIndex.build(np.zeros((0, 4), np.float32), [])
    sims, codes = idx.search(_unit_rows(2, 4), k=5)
    assert codes.shape == (2, 0)
