"""Item attribute encoder: one-hot categories and scaled numbers into weighted, L2-normalised vectors."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from routing_core.config import FeatureSpec
from routing_core.errors import DataError, ModelCompatibilityError

logger = logging.getLogger(__name__)

MISSING_CATEGORY = "__MISSING__"
# Values seen fewer than MIN_CATEGORY_FREQUENCY times, and values beyond the
# MAX_CATEGORIES_PER_FEATURE most frequent, share one "infrequent" column whose
# weight is 0: two different rare values must not look alike, so a rare value
# is encoded like an unknown one. This bounds the vector length at factory scale.
MIN_CATEGORY_FREQUENCY = 2
MAX_CATEGORIES_PER_FEATURE = 200
# Types skops must trust to load our own encoder file; anything else is rejected.
_TRUSTED_SKOPS_TYPES = {"numpy.dtype"}


class UnseenCategoryWarning(UserWarning):
    """A query item has a category value the encoder never saw; it is encoded as all-zero."""


@dataclass
class ItemEncoder:
    """Encode item-master rows into float32 vectors whose inner product is cosine similarity.

    Categorical features are one-hot encoded with a missing value as its own
    category; unseen categories are allowed at query time (reported, encoded as
    zeros). Numeric features are median-imputed and standard-scaled. Each
    feature's weight multiplies its columns after scaling, then rows are
    L2-normalised.
    """

    features: list[FeatureSpec]
    category_features_: list[str] = field(default_factory=list)
    number_features_: list[str] = field(default_factory=list)
    missing_features_: list[str] = field(default_factory=list)
    onehot_: OneHotEncoder | None = None
    numeric_: Pipeline | None = None
    column_weights_: np.ndarray | None = None
    # Derived from onehot_ by fit and load, never saved: per category feature, the
    # output column of each value whose column has a non-zero weight.
    category_columns_: list[dict[str, int]] = field(default_factory=list, repr=False)

    @property
    def used_features_(self) -> list[str]:
        """Feature columns present in the training data, categories first."""
        return self.category_features_ + self.number_features_

    @property
    def dimension_(self) -> int:
        """Length of an encoded vector."""
        return 0 if self.column_weights_ is None else int(self.column_weights_.shape[0])

    def fit(self, items: pl.DataFrame) -> ItemEncoder:
        """Fit on the item master; feature columns absent from ``items`` are skipped and listed."""
        present = set(items.columns)
        self.missing_features_ = [f.name for f in self.features if f.name not in present]
        if self.missing_features_:
            logger.warning("feature columns missing from the data, skipped: %s", ", ".join(self.missing_features_))
        used = [f for f in self.features if f.name in present]
        if not used:
            raise DataError("none of the configured feature columns is in the item master")
        self.category_features_ = [f.name for f in used if f.kind == "category"]
        self.number_features_ = [f.name for f in used if f.kind == "number"]
        weights = {f.name: f.weight for f in used}

        self._check_finite(items)
        column_weights: list[np.ndarray] = []
        if self.category_features_:
            self.onehot_ = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                min_frequency=MIN_CATEGORY_FREQUENCY,
                max_categories=MAX_CATEGORIES_PER_FEATURE,
                sparse_output=False,
                dtype=np.float32,
            ).fit(self._category_matrix(items))
            for name, n_out, infrequent in zip(
                self.category_features_, self._onehot_widths(), self.onehot_.infrequent_categories_
            ):
                feature_weights = np.full(n_out, weights[name], dtype=np.float32)
                if infrequent is not None:
                    feature_weights[-1] = 0.0  # sklearn puts the infrequent column last
                column_weights.append(feature_weights)
        if self.number_features_:
            self.numeric_ = Pipeline(
                [("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", StandardScaler())]
            ).fit(self._number_matrix(items))
            column_weights.append(np.array([weights[n] for n in self.number_features_], dtype=np.float32))
        self.column_weights_ = np.concatenate(column_weights)
        self._build_category_columns()
        logger.info(
            "encoder fitted on %d items: %d categorical, %d numeric features, dimension %d",
            items.height, len(self.category_features_), len(self.number_features_), self.dimension_,
        )
        return self

    def transform(self, items: pl.DataFrame, warn_unseen: bool = True) -> np.ndarray:
        """Return C-contiguous float32 L2-normalised vectors, one row per item.

        Raises DataError naming the item and column for NaN or infinite numbers.
        Emits UnseenCategoryWarning for category values not seen in training
        unless ``warn_unseen`` is False (callers that report them themselves).
        """
        if self.column_weights_ is None:
            raise RuntimeError("ItemEncoder.transform called before fit")
        items = self._with_all_columns(items)
        numbers = None
        if self.number_features_:
            number_frame = items.select(pl.col(c).cast(pl.Float64, strict=False) for c in self.number_features_)
            # A null becomes NaN in numpy, so NaN and infinity are tested before conversion.
            if number_frame.select(pl.any_horizontal((pl.all().is_nan() | pl.all().is_infinite()).any())).item():
                self._check_finite(items)
            numbers = number_frame.to_numpy().astype(np.float64)
        vectors = np.zeros((items.height, self.dimension_), dtype=np.float32)
        if self.onehot_ is not None:
            unseen = self.unseen_categories(items) if warn_unseen else []
            if unseen:
                warnings.warn(
                    "unseen category values (encoded as unknown): "
                    + "; ".join(f"{col}={val!r}" for col, val in unseen),
                    UnseenCategoryWarning,
                    stacklevel=2,
                )
            # Same values as OneHotEncoder.transform(...) * column_weights_, without
            # its per-value Python work: a value's one-hot 1.0 times its weight is the
            # weight, and rare or unknown values (weight 0 or no column) stay 0.
            columns = self._category_column_matrix(items)
            rows = np.arange(items.height)
            for j in range(columns.shape[1]):
                known = columns[:, j] >= 0
                vectors[rows[known], columns[known, j]] = self.column_weights_[columns[known, j]]
        if self.numeric_ is not None:
            first = self.dimension_ - len(self.number_features_)
            vectors[:, first:] = self.numeric_.transform(numbers).astype(np.float32) * self.column_weights_[first:]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)

    def unseen_categories(self, items: pl.DataFrame) -> list[tuple[str, str]]:
        """List (column, value) pairs of ``items`` that the encoder did not see when fitted."""
        if self.onehot_ is None:
            return []
        items = self._with_all_columns(items)
        unseen: list[tuple[str, str]] = []
        for name, known in zip(self.category_features_, self.onehot_.categories_):
            values = items.get_column(name).cast(pl.String).fill_null(MISSING_CATEGORY).unique().to_list()
            known_values = set(known)
            unseen.extend((name, v) for v in values if v not in known_values and v != MISSING_CATEGORY)
        return sorted(unseen)

    def save(self, path: Path) -> None:
        """Write the fitted encoder with skops (no pickle)."""
        state = {
            "features": [f.model_dump() for f in self.features],
            "category_features": self.category_features_,
            "number_features": self.number_features_,
            "missing_features": self.missing_features_,
            "onehot": self.onehot_,
            "numeric": self.numeric_,
            "column_weights": self.column_weights_,
        }
        sio.dump(state, path)

    @classmethod
    def load(cls, path: Path) -> ItemEncoder:
        """Read an encoder written by ``save``; raise ModelCompatibilityError on foreign content."""
        data = Path(path).read_bytes()
        try:
            untrusted = set(sio.get_untrusted_types(data=data))
        except Exception as exc:  # a truncated or foreign file fails inside zipfile or json
            raise ModelCompatibilityError(f"encoder file {path} cannot be read ({exc}); retrain") from exc
        if not untrusted <= _TRUSTED_SKOPS_TYPES:
            raise ModelCompatibilityError(
                f"encoder file {path} contains unexpected types {sorted(untrusted - _TRUSTED_SKOPS_TYPES)}; retrain"
            )
        try:
            state = sio.loads(data, trusted=sorted(untrusted))
        except Exception as exc:  # skops raises many types on a corrupt or foreign file
            raise ModelCompatibilityError(f"encoder file {path} cannot be read ({exc}); retrain") from exc
        encoder = cls(features=[FeatureSpec(**f) for f in state["features"]])
        encoder.category_features_ = list(state["category_features"])
        encoder.number_features_ = list(state["number_features"])
        encoder.missing_features_ = list(state["missing_features"])
        encoder.onehot_ = state["onehot"]
        encoder.numeric_ = state["numeric"]
        encoder.column_weights_ = np.asarray(state["column_weights"], dtype=np.float32)
        encoder._build_category_columns()
        return encoder

    # --- helpers -------------------------------------------------------------------

    def _with_all_columns(self, items: pl.DataFrame) -> pl.DataFrame:
        """Add used feature columns that a query frame lacks, as nulls."""
        absent = [c for c in self.used_features_ if c not in items.columns]
        return items.with_columns(pl.lit(None).alias(c) for c in absent) if absent else items

    def _category_matrix(self, items: pl.DataFrame) -> np.ndarray:
        frame = items.select(
            pl.col(c).cast(pl.String).str.strip_chars().replace("", None).fill_null(MISSING_CATEGORY)
            for c in self.category_features_
        )
        return frame.to_numpy().astype(object)

    def _category_column_matrix(self, items: pl.DataFrame) -> np.ndarray:
        """Return, per item and category feature, the output column of its value, or -1 for none."""
        frame = items.select(
            pl.col(c).cast(pl.String).str.strip_chars().replace("", None).fill_null(MISSING_CATEGORY)
            .replace_strict(lookup, default=-1, return_dtype=pl.Int64)
            for c, lookup in zip(self.category_features_, self.category_columns_)
        )
        return frame.to_numpy()

    def _build_category_columns(self) -> None:
        """Find each category value's output column by transforming the known values with the OneHotEncoder."""
        self.category_columns_ = []
        if self.onehot_ is None or self.column_weights_ is None:
            return
        offset = 0
        for j, (categories, width) in enumerate(zip(self.onehot_.categories_, self._onehot_widths())):
            probe = np.empty((len(categories), len(self.category_features_)), dtype=object)
            for k, known in enumerate(self.onehot_.categories_):
                probe[:, k] = known[0]
            probe[:, j] = categories
            block = self.onehot_.transform(probe)[:, offset:offset + width]
            lookup: dict[str, int] = {}
            for value, row in zip(categories, block):
                hot = np.flatnonzero(row)
                if hot.size == 1 and self.column_weights_[offset + hot[0]] != 0:
                    lookup[str(value)] = int(offset + hot[0])
            self.category_columns_.append(lookup)
            offset += width

    def _number_matrix(self, items: pl.DataFrame) -> np.ndarray:
        frame = items.select(pl.col(c).cast(pl.Float64, strict=False) for c in self.number_features_)
        return frame.to_numpy().astype(np.float64)

    def _onehot_widths(self) -> list[int]:
        assert self.onehot_ is not None
        widths = []
        for categories, infrequent in zip(self.onehot_.categories_, self.onehot_.infrequent_categories_):
            n_infrequent = 0 if infrequent is None else len(infrequent)
            widths.append(len(categories) - n_infrequent + (1 if n_infrequent else 0))
        return widths

    def _check_finite(self, items: pl.DataFrame) -> None:
        """Raise DataError naming item and column for NaN or infinite numeric values."""
        if not self.number_features_ and not any(f.kind == "number" for f in self.features):
            return
        names = self.number_features_ or [f.name for f in self.features if f.kind == "number" and f.name in items.columns]
        numeric = items.select(
            pl.col("ITEM_CD") if "ITEM_CD" in items.columns else pl.lit("?").alias("ITEM_CD"),
            *(pl.col(c).cast(pl.Float64, strict=False) for c in names),
        )
        bad = numeric.unpivot(index="ITEM_CD", on=names).filter(
            pl.col("value").is_nan() | pl.col("value").is_infinite()
        )
        if bad.height:
            rows = bad.head(20).to_dicts()
            listed = ", ".join(f"{r['ITEM_CD']}/{r['variable']}={r['value']}" for r in rows)
            raise DataError(
                f"{bad.height} non-finite numeric value(s) (item/column): {listed}",
                rows=[{**r, "reason": "NaN or infinite"} for r in rows],
            )
