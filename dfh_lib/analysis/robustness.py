"""Robustness of codes: perturb the images, count the flipped bits, measure
retrieval with perturbed queries (Chapter 4).
"""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ..core.data.dataset import FaceDataset
from ..core.metrics import evaluate_retrieval
from ..engine.encoding import binary_codes

__all__ = ["PERTURBATIONS", "check_perturbation", "check_perturbations", "perturb",
           "bit_flip_rate", "robustness"]


#: perturbation kind -> what its strength means (0 always = the clean images)
PERTURBATIONS = {"noise": "Gaussian noise σ, images in [0, 1] units",
                 "blur": "Gaussian blur σ in pixels",
                 "shift": "translation by that many pixels in x and y (int), edge padding",
                 "jpeg": "JPEG quality 1..100 (lower = stronger; 0 = no compression)"}


def check_perturbation(kind: str, strength) -> float:
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation kind {kind!r}; choose one of "
                         f"{tuple(PERTURBATIONS)}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not 0 <= strength < math.inf:
        raise ValueError(f"strength must be a finite number >= 0; got {strength!r}")
    if kind in ("shift", "jpeg") and strength != int(strength):
        raise ValueError(f"{kind} strength must be a whole number ({PERTURBATIONS[kind]}); "
                         f"got {strength!r}")
    if kind == "jpeg" and strength > 100:
        raise ValueError(f"jpeg strength is the JPEG quality 1..100 (0 = none); got {strength}")
    return float(strength)


def check_perturbations(perturbations) -> list[tuple]:
    """``perturbations`` as a list of checked ``(kind, strength)`` pairs."""
    pairs = [tuple(p) for p in perturbations]
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"perturbations must be (kind, strength) pairs; got {pair!r}")
        check_perturbation(*pair)
    return pairs


def _to_float_nchw(images):
    """(float (N, 3, H, W) in [0, 1], a function that restores the input's type)."""
    if isinstance(images, FaceDataset):
        x, back = _to_float_nchw(images.images)
        return x, lambda y: FaceDataset(back(y), images.labels, images.identity_names,
                                        images.name, images.attributes,
                                        images.attribute_names, images.source_index)
    if isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4 \
            and images.shape[-1] == 3:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
        return x, lambda y: (y.mul(255).round().clamp(0, 255).to(torch.uint8)
                             .permute(0, 2, 3, 1).numpy())
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3:
        if images.dtype == torch.uint8:
            return images.float().div(255), \
                lambda y: y.mul(255).round().clamp(0, 255).to(torch.uint8)
        if images.is_floating_point():
            return images.float(), lambda y: y.to(images.dtype)
    got = getattr(images, "shape", type(images).__name__)
    raise ValueError(f"images must be a FaceDataset, a uint8 numpy array (N, H, W, 3) or a "
                     f"torch tensor (N, 3, H, W) (uint8, or float in [0, 1]); got {got} "
                     f"{getattr(images, 'dtype', '')}")


def _shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by ±pixels in y and in x (random signs), edge padding."""
    h, w = x.shape[2:]
    if pixels >= min(h, w):
        raise ValueError(f"shift strength must be < the image size {(h, w)}; got {pixels}")
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2, (2, len(x)), generator=generator) * 2 - 1) * pixels
    return torch.stack([p[:, pixels - a:pixels - a + h, pixels - b:pixels - b + w]
                        for p, a, b in zip(padded, dy.tolist(), dx.tolist())])


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image through a JPEG encode/decode round trip (PIL) at ``quality``."""
    def round_trip(image: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    hwc = x.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.stack([round_trip(image) for image in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255)


def perturb(images, kind: str, strength: float, seed: int = 0):
    """A perturbed copy of ``images``, same type, layout and dtype.

    Kinds (:data:`PERTURBATIONS`): ``"noise"`` (Gaussian, σ = strength in
    [0, 1] units, clipped), ``"blur"`` (Gaussian, σ = strength pixels, kernel
    2⌈3σ⌉ + 1 capped at the image size, reflect padding), ``"shift"``
    (strength pixels in x and y, random directions, edge padding),
    ``"jpeg"`` (a PIL round trip at quality = strength).
    Strength 0 returns the images unchanged (a copy) for every kind.

    Args:
        images: a FaceDataset (its images, (N, H, W, 3) uint8 — the dataset
            convention), a uint8 numpy array (N, H, W, 3), or a torch tensor
            (N, 3, H, W), uint8 or float in [0, 1] (the network input).
        seed: the noise / shift directions.
    """
    strength = check_perturbation(kind, strength)
    x, back = _to_float_nchw(images)
    if strength == 0 or not len(x):
        return back(x.clone())
    generator = torch.Generator().manual_seed(seed)
    if kind == "noise":
        x = (x + strength * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    elif kind == "blur":
        size = min(2 * math.ceil(3 * strength) + 1, 2 * (min(x.shape[2:]) // 2) - 1)
        x = gaussian_blur(x, [size, size], [strength, strength]) if size > 1 else x
    elif kind == "shift":
        x = _shift(x, int(strength), generator)
    else:
        x = _jpeg(x, int(strength))
    return back(x)


def bit_flip_rate(model: nn.Module, data, kind: str, strength: float, seed: int = 0,
                  batch_size: int = 512, device=None) -> float:
    """Fraction of code bits that flip when ``data`` is perturbed.

    Encodes the clean and the perturbed images with
    :func:`~dfh_lib.engine.encoding.binary_codes` (sgn of the model's outputs: for raw
    outputs z the same bits as sgn tanh z) and compares. ``data``: as
    :func:`perturb` (a FaceDataset is perturbed at its stored resolution,
    then resized to the model's input size by the encoder).
    """
    clean = binary_codes(model, data, batch_size, device)
    noisy = binary_codes(model, perturb(data, kind, strength, seed), batch_size, device)
    return float((clean != noisy).double().mean()) if clean.numel() else 0.0


def robustness(model: nn.Module, splits, perturbations, seed: int = 0,
               batch_size: int = 512, device=None):
    """Retrieval under perturbed queries: one row per ``(kind, strength)``.

    The queries (``splits.query``) are perturbed, the database
    (``splits.database``) stays clean; codes from
    :func:`~dfh_lib.engine.encoding.binary_codes`, metrics from
    :func:`~dfh_lib.core.metrics.evaluate_retrieval`. The first row is the clean
    queries (kind ``"clean"``, strength 0).

    Returns:
        a ``pandas.DataFrame`` with columns ``kind``, ``strength``,
        ``bit_flip_rate`` (of the query codes) and ``mAP``.
    """
    pairs = check_perturbations(perturbations)
    database = binary_codes(model, splits.database, batch_size, device)
    clean = binary_codes(model, splits.query, batch_size, device)
    q_labels = torch.from_numpy(splits.query.labels)
    d_labels = torch.from_numpy(splits.database.labels)
    rows = []
    for kind, strength in [("clean", 0)] + pairs:
        codes = clean if kind == "clean" else binary_codes(
            model, perturb(splits.query, kind, strength, seed), batch_size, device)
        rows.append({"kind": kind, "strength": strength,
                     "bit_flip_rate": float((codes != clean).double().mean()),
                     "mAP": evaluate_retrieval(codes, database, q_labels, d_labels)["mAP"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------
# the experiment: every scheme through the same loop, measured the same way
# ----------------------------------------------------------------------------
