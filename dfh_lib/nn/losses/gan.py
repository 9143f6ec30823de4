"""StarGAN's losses: the WGAN-GP adversarial terms, the attribute
classification terms and the cycle reconstruction.

These are GAN losses, not hash losses: they do not follow the
:class:`~dfh_lib.nn.losses.base.HashLoss` contract and are not in the
hash-loss registry (:mod:`dfh_lib.nn.losses.registry`); only
:func:`dfh_lib.engine.gan_training.train_gan` uses them.

Losses (the paper's Eq. 1-7, WGAN-GP form, which the official code trains):

* ``L_D = -E[D_src(x)] + E[D_src(G(x, c'))] + λ_cls L_cls^r + λ_gp L_gp``
* ``L_G = -E[D_src(G(x, c'))] + λ_cls L_cls^f + λ_rec E|x - G(G(x, c'), c)|_1``
* ``L_gp = E[(||∇_x̂ D_src(x̂)||_2 - 1)^2]`` with ``x̂ = a x + (1 - a) G(x, c')``,
  ``a ~ U(0, 1)`` per image (Gulrajani et al., 2017);
* ``L_cls^r = BCE(D_cls(x), c)``, ``L_cls^f = BCE(D_cls(G(x, c')), c')``
  (summed over attributes, mean over the batch, as the official code).

Masked generators (:class:`~dfh_lib.nn.gan.Generator` with ``masked=True``)
add two terms to ``L_G``:

* ``λ_mask mean(m)``: the mask penalty (GANimation's L1 attention loss), so
  the edit acts on as few pixels as it needs;
* ``λ_id L_id`` with ``L_id = mean(1 − cos(f(G(x, c')), f(x)))``, ``f`` a
  frozen face embedding network (the target ``f(x)`` is detached): the edited
  face must stay close to its own face in a space that tells people apart.

``c`` are the source attributes of ``x`` and ``c'`` the targets. The weights
λ come from :class:`~dfh_lib.nn.gan.GANConfig`.

Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..gan import GANConfig

__all__ = ["gradient_penalty", "discriminator_loss", "generator_loss", "identity_loss"]


def gradient_penalty(critic: Callable, real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: ``mean((||∇_x̂ critic(x̂)||_2 - 1)^2)`` with ``x̂ = a·real +
    (1 - a)·fake`` per image (``alpha``: (N,) in [0, 1]). ``critic`` maps
    (N, ...) to scores; their sum is differentiated (one gradient per image,
    as in StarGAN's code). Differentiable (``create_graph``) for the D step."""
    a = alpha.view(-1, *([1] * (real.ndim - 1))).to(real)
    mixed = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Attribute BCE summed over attributes, averaged over images (StarGAN)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)


def discriminator_loss(D: nn.Module, real, fake, c_real, alpha, config: GANConfig):
    """``L_D = -E[D_src(x)] + E[D_src(fake)] + λ_cls BCE(D_cls(x), c) + λ_gp L_gp``.

    Returns (loss, terms) with terms ``d_real``, ``d_fake``, ``d_cls``, ``d_gp``
    (floats, before weighting)."""
    src_real, cls_real = D(real)
    src_fake, _ = D(fake.detach())
    d_real, d_fake = -src_real.mean(), src_fake.mean()
    d_cls = _bce(cls_real, c_real)
    d_gp = gradient_penalty(lambda x: D(x)[0], real, fake, alpha)
    loss = d_real + d_fake + config.lambda_cls * d_cls + config.lambda_gp * d_gp
    return loss, {"d_loss": loss, "d_real": d_real, "d_fake": d_fake, "d_cls": d_cls,
                  "d_gp": d_gp}


def identity_loss(embed: Callable, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``mean(1 − cos(embed(fake), embed(real)))``; the real faces' embeddings
    are targets (no gradient). 0 when every edit keeps its embedding's
    direction, 2 when it points the opposite way."""
    with torch.no_grad():
        target = F.normalize(embed(real), dim=1)
    return (1 - (F.normalize(embed(fake), dim=1) * target).sum(1)).mean()


def generator_loss(G: nn.Module, D: nn.Module, real, c_real, c_target, config: GANConfig,
                   identity: Callable | None = None):
    """``L_G = -E[D_src(G(x, c'))] + λ_cls BCE(D_cls(G(x, c')), c')
    + λ_rec mean|x - G(G(x, c'), c)|``, plus ``λ_mask mean(m)`` for a masked
    ``G`` and ``λ_id`` :func:`identity_loss` with ``identity`` (the frozen
    embedding; needed when ``λ_id > 0``). Returns (loss, terms): ``g_adv``,
    ``g_cls``, ``g_rec`` (and ``g_mask``, ``g_id``)."""
    terms = {}
    if getattr(G, "masked", False):
        colour, mask = G.layers(real, c_target)
        fake = G.compose(real, colour, mask)
        terms["g_mask"] = mask.mean()
    else:
        fake = G(real, c_target)
    src_fake, cls_fake = D(fake)
    g_adv = -src_fake.mean()
    g_cls = _bce(cls_fake, c_target)
    g_rec = (real - G(fake, c_real)).abs().mean()
    loss = g_adv + config.lambda_cls * g_cls + config.lambda_rec * g_rec
    if "g_mask" in terms:
        loss = loss + config.lambda_mask * terms["g_mask"]
    if config.lambda_id > 0:
        if identity is None:
            raise ValueError("lambda_id > 0 needs the identity embedding network")
        terms["g_id"] = identity_loss(identity, real, fake)
        loss = loss + config.lambda_id * terms["g_id"]
    return loss, {"g_loss": loss, "g_adv": g_adv, "g_cls": g_cls, "g_rec": g_rec, **terms}
