"""FAISS inner-product index over encoded items, with the row → ITEM_CD table."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np

from routing_core.errors import DataError

logger = logging.getLogger(__name__)

HNSW_NEIGHBOURS = 32
SINGLE_THREAD_BELOW = 16  # queries per call searched on one thread


def as_query_matrix(vectors: np.ndarray, dimension: int) -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 matrix of ``dimension`` columns.

    Accepts float64 and non-contiguous input; raises DataError on a wrong shape
    or on NaN or infinite values.
    """
    matrix = np.asarray(vectors)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2 or matrix.shape[1] != dimension:
        raise DataError(f"query vectors have shape {matrix.shape}, expected (n, {dimension})")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if not np.isfinite(matrix).all():
        bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1)).tolist()
        raise DataError(f"query vectors contain NaN or infinite values in rows {bad_rows[:20]}")
    return matrix


@dataclass
class ItemIndex:
    """A FAISS inner-product index and the ITEM_CD of each of its rows."""

    index: faiss.Index
    item_codes: np.ndarray  # dtype object (str), row i of the index is item_codes[i]

    @property
    def kind(self) -> str:
        """``hnsw`` for an HNSW index, else ``flat`` (exact search)."""
        return "hnsw" if isinstance(self.index, faiss.IndexHNSW) else "flat"

    @property
    def size(self) -> int:
        """Number of indexed items."""
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, item_codes: list[str] | np.ndarray, kind: str = "flat") -> ItemIndex:
        """Build an exact (``flat``) or approximate (``hnsw``) inner-product index."""
        codes = np.asarray(item_codes, dtype=object)
        matrix = as_query_matrix(vectors, np.asarray(vectors).shape[-1])
        if matrix.shape[0] != codes.shape[0]:
            raise DataError(f"{matrix.shape[0]} vectors but {codes.shape[0]} item codes")
        dimension = matrix.shape[1]
        if kind == "flat":
            index: faiss.Index = faiss.IndexFlatIP(dimension)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        else:
            raise ValueError(f"unknown index kind {kind!r}; expected 'flat' or 'hnsw'")
        index.add(matrix)
        logger.info("built %s index: %d items, dimension %d", kind, index.ntotal, dimension)
        return cls(index=index, item_codes=codes)

    def search(
        self, queries: np.ndarray, k: int, exclude: list[str | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (similarities, ITEM_CD) arrays of shape (n_queries, k').

        ``exclude[i]`` is an ITEM_CD that must not appear in row i (the query
        item itself). k' = min(k, indexed items); FAISS's -1 ids (fewer
        results than asked) come back as similarity NaN and ITEM_CD None.
        Similarities are clipped to [-1, 1], so an identical item scores 1.0.
        """
        exclude_rows = None
        if exclude is not None:
            positions = {code: row for row, code in enumerate(self.item_codes)} if len(exclude) > 64 else None
            exclude_rows = np.array(
                [self._row_of(code, positions) for code in exclude], dtype=np.int64
            )
        similarities, rows = self.search_rows(queries, k, exclude_rows)
        codes = np.where(rows >= 0, self.item_codes[np.clip(rows, 0, None)], None)
        return similarities, codes

    def _row_of(self, code: str | None, positions: dict[str, int] | None) -> int:
        if code is None:
            return -1
        if positions is not None:
            return positions.get(code, -1)
        found = np.flatnonzero(self.item_codes == code)
        return int(found[0]) if found.size else -1

    def search_rows(
        self, queries: np.ndarray, k: int, exclude_rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (similarities, index rows) of shape (n_queries, k'); a missing result is row -1, similarity NaN.

        ``exclude_rows[i]`` is an index row that must not appear in result row i (-1: none).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        matrix = as_query_matrix(queries, self.index.d)
        n_indexed = self.size
        k_effective = min(k, n_indexed)
        if n_indexed == 0 or matrix.shape[0] == 0:
            return np.empty((matrix.shape[0], 0), np.float32), np.empty((matrix.shape[0], 0), np.int64)

        # Ask for one extra row so excluding the query item still leaves k.
        k_search = min(k_effective + (1 if exclude_rows is not None else 0), n_indexed)
        # OpenMP start-up costs more than it saves on a handful of queries.
        threads = faiss.omp_get_max_threads()
        if matrix.shape[0] < SINGLE_THREAD_BELOW:
            faiss.omp_set_num_threads(1)
        try:
            similarities, rows = self.index.search(matrix, k_search)
        finally:
            faiss.omp_set_num_threads(threads)
        similarities = np.where(rows >= 0, np.clip(similarities, -1.0, 1.0), np.nan).astype(np.float32)

        if exclude_rows is not None:
            keep = (rows != np.asarray(exclude_rows, dtype=np.int64).reshape(-1, 1)) & (rows >= 0)
            # Stable compaction per row: kept entries first, in their original order.
            order = np.argsort(~keep, axis=1, kind="stable")
            rows = np.take_along_axis(rows, order, axis=1)
            similarities = np.take_along_axis(similarities, order, axis=1)
            kept_counts = keep.sum(axis=1, keepdims=True)
            positions = np.arange(rows.shape[1]).reshape(1, -1)
            rows = np.where(positions < kept_counts, rows, -1)
            similarities = np.where(positions < kept_counts, similarities, np.nan)
        return similarities[:, :k_effective], rows[:, :k_effective]

    def to_bytes(self) -> bytes:
        """Serialise the index; writing bytes ourselves keeps non-ASCII paths working."""
        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, item_codes: np.ndarray) -> ItemIndex:
        """Rebuild an index written by ``to_bytes``."""
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        codes = np.asarray(item_codes, dtype=object)
        if index.ntotal != codes.shape[0]:
            raise DataError(f"index has {index.ntotal} rows but the item table has {codes.shape[0]}")
        return cls(index=index, item_codes=codes)
