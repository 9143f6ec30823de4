"""How binary codes are, and how fast they get there (Chapter 4).

:func:`code_statistics` (quantization error, undecided and saturated bits,
bit balance), :func:`toy_convergence` (gradient descent on free outputs under
a quantizer alone) and :func:`epochs_to_fraction` (convergence speed of a run).
"""
from __future__ import annotations

import copy

import pandas as pd
import torch

from ..core.checks import non_negative, positive_int
from ..nn.quantizers import Quantizer, build_quantizer, sign

__all__ = ["code_statistics", "toy_convergence", "epochs_to_fraction", "epochs_to_target"]


def code_statistics(u, undecided_below: float = 0.5, saturated_above: float = 0.99) -> dict:
    """How binary relaxed codes are, in numbers.

    Keys (python floats): ``quantization_error`` mean |u − sgn u|;
    ``undecided`` fraction with |u| < ``undecided_below`` (a small change
    flips them); ``saturated`` fraction with |u| > ``saturated_above``
    (tanh's gradient ≤ 0.02 there); ``mean_abs`` mean |u|; ``bit_balance``
    1 − mean_k |mean_i sgn u_ik| (1: every bit splits the set in half, 0:
    constant bits). For sign-forward schemes pass the codes (all ±1) or
    ``tanh z`` to see the margin.

    Shapes: u (N, K) float, numpy or torch.
    """
    u = torch.as_tensor(u)
    if u.ndim != 2 or not u.is_floating_point() or not len(u):
        raise ValueError(f"u must be non-empty float codes of shape (N, bits); got "
                         f"{tuple(u.shape)} {u.dtype}")
    a, size = u.abs(), u.numel()
    positive = torch.count_nonzero(u >= 0, dim=0).double() / len(u)  # sgn 0 = +1
    return {"quantization_error": float((a - 1).abs().mean()),  # |u − sgn u|
            "undecided": int(torch.count_nonzero(a < undecided_below)) / size,
            "saturated": int(torch.count_nonzero(a > saturated_above)) / size,
            "mean_abs": float(a.mean()),
            "bit_balance": float(1 - (2 * positive - 1).abs().mean())}


def toy_convergence(quantizer: Quantizer | str, steps: int = 500, n: int = 1000,
                    bits: int = 48, lr: float = 1.0, seed: int = 0, init_std: float = 0.5,
                    pull: float = 0.0):
    """Gradient descent on free outputs z under a quantizer alone: how bits settle.

    z (n, bits) starts at N(0, init_std²); each step is plain gradient
    descent on the per-entry objective ``weight · q(x(z)) − pull · t · u(z)``,
    with the hand-derived gradients (``grad_wrt_z``, ``code_gradient``) and
    t a fixed random ±1 target per entry (a linear "data" pull; 0 = none).
    Plain GD, not Adam: Adam rescales every entry's step and would hide
    exactly the vanishing gradients this experiment shows. A schedule
    (HashNet's β) runs over the steps as if each were an epoch, on a copy.

    Returns:
        a ``pandas.DataFrame``, one row per step 0..steps (before each
        update, and after the last): ``penalty`` (weight · mean q),
        :func:`code_statistics` of the codes u = codes(z) and ``mean_abs_z``
        (grows without bound when the penalty's zero is at |z| = ∞) and, with
        a pull, ``agreement``: the fraction of bits with the target's sign.
        Sign-forward codes (cubic, sign_ste) are ±1: quantization error 0.
    """
    for name, value in (("steps", steps), ("n", n), ("bits", bits)):
        positive_int(name, value)
    lr, pull = non_negative("lr", lr), non_negative("pull", pull)
    q = copy.deepcopy(build_quantizer(quantizer) if isinstance(quantizer, str) else quantizer)
    generator = torch.Generator().manual_seed(seed)
    z = init_std * torch.randn(n, bits, generator=generator)
    target = sign(torch.randn(n, bits, generator=generator))
    rows = []
    with torch.no_grad():
        for step in range(steps + 1):
            if step < steps:
                q.on_epoch_start(step, steps)
            u = q.codes(z)
            rows.append({"step": step, "penalty": float(q.penalty(z)), **code_statistics(u),
                         "mean_abs_z": float(z.abs().mean())})
            if pull:
                rows[-1]["agreement"] = int(torch.count_nonzero(sign(u) == target)) / u.numel()
            if step < steps:
                grad = q.weight * q.grad_wrt_z(z)
                if pull:
                    grad = grad - pull * target * q.code_gradient(z)
                z = z - lr * grad
    return pd.DataFrame(rows).set_index("step")


def epochs_to_fraction(history, fraction: float = 0.95, metric: str = "val_mAP") -> int | None:
    """Convergence speed: the first evaluated epoch whose ``metric`` reaches
    ``fraction`` × its FINAL value (the last evaluated epoch's), or None
    before any evaluation. Resolution: the run's ``eval_every``.

    Args:
        history: a :class:`~dfh_lib.engine.train.History` (or anything with ``records``).
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1]; got {fraction!r}")
    scored = [(r["epoch"], r[metric]) for r in history.records if r.get(metric) is not None]
    if not scored:
        return None
    final = scored[-1][1]
    return next(epoch for epoch, value in scored if value >= fraction * final)


def epochs_to_target(histories: dict, fraction: float = 0.95, metric: str = "val_mAP") -> dict:
    """Convergence speed against one bar for every run of a comparison.

    ``histories[(label, bits)]`` are the runs compared; at each code length
    the target is ``fraction`` × the best ``metric`` any of them reached. A
    run's value is its first evaluated epoch at or above the target, None if
    it never got there — unlike :func:`epochs_to_fraction`, a run that
    plateaus low is not rewarded for reaching its own plateau early.
    """
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1]; got {fraction!r}")
    scored = {key: [(r["epoch"], r[metric]) for r in h.records if r.get(metric) is not None]
              for key, h in histories.items()}
    best = {}
    for (_, bits), values in scored.items():
        best[bits] = max([best.get(bits, float("-inf"))] + [v for _, v in values])
    return {key: next((e for e, v in values if v >= fraction * best[key[1]]), None)
            for key, values in scored.items()}
