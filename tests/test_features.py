"""Item encoder: weights after scaling, missing values, unseen categories, skops round trip."""

import warnings

import numpy as np
import polars as pl
import pytest

from routing_core.config import FeatureSpec
from routing_core.errors import DataError, ModelCompatibilityError
from routing_core.features import ItemEncoder, UnseenCategoryWarning

FEATURES = [
    FeatureSpec(name="PART_TYPE", kind="category", weight=2.0),
    FeatureSpec(name="ITEM_MATERIAL", kind="category", weight=1.0),
    FeatureSpec(name="OUTDIAMETER", kind="number", weight=1.0),
]


def _items(n: int = 40) -> pl.DataFrame:
    return pl.DataFrame({
        "ITEM_CD": [f"{i:06d}" for i in range(n)],
        "PART_TYPE": ["FACE", "METAL"] * (n // 2),
        "ITEM_MATERIAL": (["SiC", "SUS316", None, "WC"] * n)[:n],
        "OUTDIAMETER": [float(20 + i) if i % 5 else None for i in range(n)],
    })


def test_vectors_are_float32_unit_length():
    encoder = ItemEncoder(FEATURES).fit(_items())
    vectors = encoder.transform(_items())
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_weight_applied_after_scaling():
    heavy = ItemEncoder([FeatureSpec(name="PART_TYPE", weight=10.0), FeatureSpec(name="OUTDIAMETER", kind="number")]).fit(_items())
    light = ItemEncoder([FeatureSpec(name="PART_TYPE", weight=0.1), FeatureSpec(name="OUTDIAMETER", kind="number")]).fit(_items())
    a, b = _items().slice(1, 1), _items().slice(39, 1)  # same PART_TYPE, diameters 21 and 59 mm
    sim_heavy = (heavy.transform(a) @ heavy.transform(b).T).item()
    sim_light = (light.transform(a) @ light.transform(b).T).item()
    assert sim_heavy > sim_light


def test_missing_category_is_own_value():
    encoder = ItemEncoder(FEATURES).fit(_items())
    both_missing = pl.DataFrame({"ITEM_CD": ["X", "Y"], "PART_TYPE": ["FACE", "FACE"], "ITEM_MATERIAL": [None, None], "OUTDIAMETER": [30.0, 30.0]})
    v = encoder.transform(both_missing)
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-5)


def test_all_missing_item_still_encodes():
    encoder = ItemEncoder(FEATURES).fit(_items())
    v = encoder.transform(pl.DataFrame({"ITEM_CD": ["EMPTY"]}))
    assert np.isfinite(v).all()
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_unseen_category_warns_and_encodes():
    encoder = ItemEncoder(FEATURES).fit(_items())
    new = pl.DataFrame({"ITEM_CD": ["N1"], "PART_TYPE": ["FACE"], "ITEM_MATERIAL": ["UNOBTAINIUM"], "OUTDIAMETER": [25.0]})
    with pytest.warns(UnseenCategoryWarning, match="UNOBTAINIUM"):
        v = encoder.transform(new)
    assert np.isfinite(v).all()
    assert encoder.unseen_categories(new) == [("ITEM_MATERIAL", "UNOBTAINIUM")]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_number_names_item_and_column(bad):
    encoder = ItemEncoder(FEATURES).fit(_items())
    new = pl.DataFrame({"ITEM_CD": ["BAD-1"], "PART_TYPE": ["FACE"], "ITEM_MATERIAL": ["SiC"], "OUTDIAMETER": [bad]})
    with pytest.raises(DataError, match="BAD-1/OUTDIAMETER"):
        encoder.transform(new)


def test_missing_feature_column_skipped():
    specs = FEATURES + [FeatureSpec(name="NOT_THERE", kind="category")]
    encoder = ItemEncoder(specs).fit(_items())
    assert encoder.missing_features_ == ["NOT_THERE"]
    assert "NOT_THERE" not in encoder.used_features_


def test_skops_round_trip(tmp_path):
    encoder = ItemEncoder(FEATURES).fit(_items())
    path = tmp_path / "인코더.skops"
    encoder.save(path)
    again = ItemEncoder.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(encoder.transform(_items()), again.transform(_items()))


def test_corrupt_encoder_file_says_retrain(tmp_path):
    path = tmp_path / "encoder.skops"
    path.write_bytes(b"not a skops file")
    with pytest.raises(ModelCompatibilityError, match="retrain"):
        ItemEncoder.load(path)


def test_transform_equals_onehot_encoder_output(tmp_path):
    # transform maps values to columns itself. It must give exactly what
    # OneHotEncoder.transform × column weights gives, also for rare, unknown,
    # blank and missing values, and after a save and load.
    items = pl.DataFrame({
        "ITEM_CD": [f"{i:03d}" for i in range(12)],
        "PART_TYPE": ["FACE", "FACE", "METAL", "METAL", "RARE", None, "FACE", "METAL", " ", "FACE", "METAL", "FACE"],
        "ITEM_MATERIAL": ["SiC", "SiC", "SUS", "SUS", "WC", "WC", None, "SiC", "SUS", "ONCE", "SiC", "SUS"],
        "OUTDIAMETER": [10.0, 12.0, None, 30.0, 31.0, 5.0, 6.0, 7.0, 8.0, 9.0, 11.0, 13.0],
    })
    queries = pl.DataFrame({
        "PART_TYPE": ["FACE", "NEW", None, "", "RARE"],
        "ITEM_MATERIAL": ["SiC", "SiC", "ONCE", None, "unknown"],
        "OUTDIAMETER": [10.0, None, 3.0, 40.0, 31.0],
    })
    encoder = ItemEncoder(FEATURES).fit(items)
    encoder.save(tmp_path / "encoder.skops")
    loaded = ItemEncoder.load(tmp_path / "encoder.skops")
    for frame in (items, queries):
        complete = encoder._with_all_columns(frame)
        expected = np.hstack([
            encoder.onehot_.transform(encoder._category_matrix(complete)),
            encoder.numeric_.transform(encoder._number_matrix(complete)).astype(np.float32),
        ]).astype(np.float32) * encoder.column_weights_
        norms = np.linalg.norm(expected, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        expected = expected / norms
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnseenCategoryWarning)
            assert np.array_equal(encoder.transform(frame), expected)
            assert np.array_equal(loaded.transform(frame), expected)
