"""Images in, codes out: what every trainer, analysis and experiment uses to
run a network over a dataset.

``encode`` gives relaxed codes (float), ``binary_codes`` their ±1 bits,
``evaluate`` the retrieval metrics of query vs database. Images are kept as
uint8 until the batch reaches the device (4x less memory than float).
"""
from __future__ import annotations

import torch

from ..core.data.dataset import FaceDataset
from ..core.metrics import binarize, evaluate_retrieval

__all__ = ["image_tensor", "as_input", "encode", "binary_codes", "evaluate"]


def image_tensor(data, image_size=None) -> torch.Tensor:
    """(N, 3, H, W) images from a FaceDataset (uint8, resized once to
    ``image_size``) or a tensor (uint8, or float in [0, 1], used as is)."""
    if isinstance(data, FaceDataset):
        if image_size is not None:
            data = data.resized(tuple(image_size))
        return torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    if isinstance(data, torch.Tensor) and data.ndim == 3 and data.is_floating_point():
        return data  # inputs a model precomputed (EmbeddingHashNet.precompute_inputs)
    if not isinstance(data, torch.Tensor) or data.ndim != 4 or data.shape[1] != 3:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"images must be a FaceDataset or a tensor of shape (N, 3, H, W); "
                         f"got {got}")
    return data


def as_input(images: torch.Tensor, device) -> torch.Tensor:
    """A batch as the float [0, 1] input networks expect (uint8 is kept in
    storage: 4x less memory than float for the cached training set)."""
    images = images.to(device, non_blocking=True)
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


def images_labels(data, image_size=None):
    """``(images, labels)`` from a FaceDataset or an ``(images, labels)`` pair."""
    if isinstance(data, FaceDataset):
        return image_tensor(data, image_size), torch.from_numpy(data.labels)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return image_tensor(data[0]), torch.as_tensor(data[1])
    raise ValueError(f"query/database must be a FaceDataset or an (images, labels) pair; "
                     f"got {type(data).__name__}")


@torch.no_grad()
def encode(model: torch.nn.Module, data, batch_size: int = 512, device=None,
           image_size=None) -> torch.Tensor:
    """Relaxed codes of ``data``: float (N, bits) on the CPU.

    Args:
        data: a FaceDataset (resized to ``image_size``, by default the
            model's own ``image_size`` where it has one) or a tensor
            (N, 3, H, W), uint8 or float in [0, 1].
        device: where to run; None = the device of the model's parameters
            (a given device moves the model there).
    The model runs in eval mode; its previous train/eval mode is restored.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    images = image_tensor(data, image_size or getattr(model, "image_size", None))
    if device is None:
        device = next(model.parameters()).device
    else:
        model.to(device)
    if hasattr(model, "precompute_inputs") and images.ndim == 4 and images.dtype == torch.uint8:
        images = model.precompute_inputs(images, training=False)  # a frozen trunk runs once
    was_training = model.training
    model.eval()
    try:
        parts = [model(as_input(images[i:i + batch_size], device)).float().cpu()
                 for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0, model.bits)


def binary_codes(model: torch.nn.Module, data, batch_size: int = 512, device=None,
                 image_size=None) -> torch.Tensor:
    """±1 codes ``(N, bits)`` int8 of ``data``: :func:`encode`, then
    :func:`~dfh_lib.core.metrics.binarize` (0 -> +1)."""
    return binarize(encode(model, data, batch_size, device, image_size))


def evaluate(model: torch.nn.Module, query, database, batch_size: int = 512,
             device=None, image_size=None) -> dict:
    """Retrieval metrics of ``model``: encode both sets, binarize, rank.

    Args:
        query, database: FaceDatasets or ``(images, labels)`` pairs, images
            (N, 3, H, W) uint8 or float in [0, 1], labels (N,) int64.
    Returns:
        :func:`dfh_lib.core.metrics.evaluate_retrieval`'s dict (``"mAP"``, ...).
    """
    image_size = image_size or getattr(model, "image_size", None)
    q_images, q_labels = images_labels(query, image_size)
    d_images, d_labels = images_labels(database, image_size)
    q_codes = binary_codes(model, q_images, batch_size, device)
    d_codes = binary_codes(model, d_images, batch_size, device)
    return evaluate_retrieval(q_codes, d_codes, q_labels, d_labels)
