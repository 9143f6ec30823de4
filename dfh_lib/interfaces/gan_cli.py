"""Command line of the GAN: ``python -m dfh_lib gan {train,classifier}``
trains the StarGAN face editor or the independent attribute classifier on
the identities not held out (the split of the shipped checkpoints).

Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..analysis.gan_quality import attribute_accuracy
from ..core.profiles import get_profile
from ..engine.gan_training import _cli_dataset, train_attribute_classifier, train_gan
from ..nn.gan import ClassifierConfig, GANConfig

__all__ = ["main_gan"]


def main_gan(argv=None):
    """``python -m dfh_lib gan {train,classifier} --profile cpu --dataset celeba``."""
    parser = argparse.ArgumentParser(prog="python -m dfh_lib gan", description=(
        "Train the StarGAN face editor or the independent attribute classifier on the "
        "identities not held out (held-out: --holdout of them, seeded)."))
    parser.add_argument("what", choices=("train", "classifier"))
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu (default: "
                        "$DFH_PROFILE, else gpu with CUDA, else cpu)")
    parser.add_argument("--dataset", default="celeba", help="celeba (DFH_DATA_DIR) or synthfaces")
    parser.add_argument("--steps", type=int, default=None, help="override the profile")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile")
    parser.add_argument("--run-dir", default=None,
                        help="default: runs/gan/<profile>-<dataset>[-classifier]")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: best)")
    parser.add_argument("--holdout", type=float, default=0.1, help="identities held out")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    train, test = _cli_dataset(args.dataset, profile, args.holdout, 0)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size))
                 if v is not None}
    suffix = "" if args.what == "train" else "-classifier"
    run_dir = Path(args.run_dir or f"runs/gan/{profile.name}-{args.dataset}{suffix}")
    start, accuracy = time.perf_counter(), None
    if args.what == "train":
        config = GANConfig.from_profile(profile, **overrides)
        result = train_gan(train, config, run_dir, progress=not args.no_progress,
                           device=args.device)
    else:
        config = ClassifierConfig.from_profile(profile, **overrides)
        result = train_attribute_classifier(train, config, run_dir,
                                            progress=not args.no_progress, device=args.device)
        accuracy = attribute_accuracy(result.classifier.cpu(), test)
    last = {k: round(v, 4) for k, v in result.log[-1].items()} if result.log else {}
    print(f"{args.what} on {len(train)} {args.dataset} images ({len(test)} held out), "
          f"{config.steps} steps in {time.perf_counter() - start:.0f} s -> {run_dir}\n"
          f"last log row: {last}")
    if accuracy is not None:
        print("held-out accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    return result
