"""Non-deep hashing baselines: random-projection LSH and PCA + ITQ.

Both map real feature vectors ``X: (N, D)`` (raw pixels in Chapter 1, deep
features in Chapter 2) to ±1 codes ``(N, bits)`` with the same ``fit`` /
``encode`` interface. Taught in Chapter 1 (book/01_face_retrieval.ipynb).
"""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from .metrics import binarize

__all__ = ["LSH", "PCAITQ", "RandomCodes", "HASHERS", "pixel_features"]


def pixel_features(dataset, size: tuple[int, int] | None = None) -> np.ndarray:
    """Flattened pixels in [0, 1] of a FaceDataset: ``(N, H*W*3)`` float32."""
    if size is not None:
        dataset = dataset.resized(size)
    return dataset.images.reshape(len(dataset), -1).astype(np.float32) / 255.0


def _check_features(X, name="X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or not len(X):
        raise ValueError(f"{name} must be a non-empty (N, D) array; got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf")
    return X


def _signs(projected: np.ndarray) -> np.ndarray:
    """±1 int8 codes by the library's one sign rule (0 -> +1)."""
    return binarize(projected).numpy()


class _Hasher:
    bits: int
    mean_: np.ndarray | None = None

    def __init__(self, bits: int, seed: int = 0):
        if int(bits) < 1:
            raise ValueError(f"bits must be >= 1; got {bits}")
        self.bits, self.seed = int(bits), seed

    def _check_fitted(self, X):
        if self.mean_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call .fit(train_features) first")
        X = _check_features(X)
        if X.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features; the hasher was fitted on "
                             f"{self.mean_.shape[0]}")
        return X

    def __repr__(self):
        return f"{type(self).__name__}(bits={self.bits}, seed={self.seed})"


class LSH(_Hasher):
    """Sign random projections (Charikar, STOC 2002): ``b = sgn(W^T (x - mean))``
    with ``W`` of i.i.d. N(0, 1) entries. Data-independent except for centring,
    so more bits only ever add information — the yardstick for learned codes."""

    def fit(self, X) -> "LSH":
        X = _check_features(X)
        rng = np.random.default_rng(self.seed)
        self.mean_ = X.mean(0)
        self.projection_ = rng.standard_normal((X.shape[1], self.bits)).astype(np.float32)
        return self

    def encode(self, X) -> np.ndarray:
        """±1 codes ``(N, bits)`` int8."""
        X = self._check_fitted(X)
        return _signs((X - self.mean_) @ self.projection_)


class PCAITQ(_Hasher):
    """PCA to ``bits`` dimensions, then Iterative Quantization (Gong, Lazebnik,
    Gordo, Perronnin, TPAMI 2013): alternate ``B = sgn(V R)`` and the
    orthogonal Procrustes rotation ``R`` minimising ``||B - V R||_F^2``, for
    ``n_iter`` (50 in the paper) iterations from a random orthogonal ``R``."""

    def __init__(self, bits: int, n_iter: int = 50, seed: int = 0):
        super().__init__(bits, seed)
        self.n_iter = n_iter

    def fit(self, X) -> "PCAITQ":
        X = _check_features(X)
        if self.bits > min(X.shape):
            raise ValueError(f"PCA-ITQ needs bits <= min(N, D) = {min(X.shape)}; got {self.bits}")
        self.mean_ = X.mean(0)
        self.pca_ = PCA(n_components=self.bits, random_state=self.seed).fit(X - self.mean_)
        V = self.pca_.transform(X - self.mean_)
        rng = np.random.default_rng(self.seed)
        R, _ = np.linalg.qr(rng.standard_normal((self.bits, self.bits)))
        self.quantization_error_ = []
        for _ in range(self.n_iter):
            B = _signs(V @ R).astype(np.float32)
            self.quantization_error_.append(float(np.square(B - V @ R).mean()))
            U, _, Wt = np.linalg.svd(B.T @ V)  # Procrustes: R = argmin ||B - VR||
            R = (U @ Wt).T
        self.rotation_ = R.astype(np.float32)
        return self

    def encode(self, X) -> np.ndarray:
        """±1 codes ``(N, bits)`` int8."""
        X = self._check_fitted(X)
        return _signs(self.pca_.transform(X - self.mean_) @ self.rotation_)


class RandomCodes(_Hasher):
    """Codes drawn at random per image, ignoring the image: the chance level
    every learned code must beat (its mAP ≈ the fraction of relevant items)."""

    def fit(self, X) -> "RandomCodes":
        self.mean_ = _check_features(X).mean(0)
        return self

    def encode(self, X) -> np.ndarray:
        X = self._check_fitted(X)
        rng = np.random.default_rng(self.seed + len(X))
        return np.where(rng.random((len(X), self.bits)) < 0.5, 1, -1).astype(np.int8)


HASHERS = {"random": RandomCodes, "LSH": LSH, "PCA-ITQ": PCAITQ}

