"""Command line of the GAN: ``python -m dfh_lib gan {train,classifier}``
trains the StarGAN face editor or the independent attribute classifier on
the identities not held out (the split of the shipped checkpoints);
``python -m dfh_lib gan evaluate --generator A --generator B`` judges editors
side by side (edit success by the independent classifier, identity kept by a
hash network and by the face net; :func:`~dfh_lib.experiments.gan_augmentation.editor_quality`).

Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

import argparse
import json
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
    parser.add_argument("what", choices=("train", "classifier", "evaluate"))
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu (default: "
                        "$DFH_PROFILE, else gpu with CUDA, else cpu)")
    parser.add_argument("--dataset", default="celeba", help="celeba (DFH_DATA_DIR) or synthfaces")
    parser.add_argument("--steps", type=int, default=None, help="override the profile")
    parser.add_argument("--batch-size", type=int, default=None, help="override the profile")
    parser.add_argument("--run-dir", default=None,
                        help="default: runs/gan/<profile>-<dataset>[-classifier]")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: best)")
    parser.add_argument("--holdout", type=float, default=0.1, help="identities held out")
    parser.add_argument("--masked", action="store_true", help="train: a generator that "
                        "blends its edit into the input through an attention mask")
    parser.add_argument("--lambda-mask", type=float, default=None,
                        help="train: weight of the mask penalty (masked; default 0.1)")
    parser.add_argument("--lambda-id", type=float, default=None, help="train: weight of the "
                        "identity loss from a frozen face embedding network (default 0)")
    parser.add_argument("--identity-net", default=None, help="train: face embedding file "
                        "of the identity loss (default: the shipped face net)")
    parser.add_argument("--generator", action="append", default=None, help="evaluate: a "
                        "generator file or run folder, or a shipped name (repeatable)")
    parser.add_argument("--out", default=None, help="evaluate: write the report (JSON) here")
    parser.add_argument("--runs-dir", default=None, help="evaluate: where the judging hash "
                        "network trains or loads (default: runs/gan-evaluate)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.what == "evaluate":
        return _evaluate(parser, args)
    for name in ("lambda_mask", "lambda_id"):
        if getattr(args, name) is not None and not getattr(args, name) >= 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.lambda_mask is not None and not args.masked:
        parser.error("--lambda-mask needs --masked")
    if args.identity_net is not None and not Path(args.identity_net).is_file():
        parser.error(f"--identity-net: no file {args.identity_net}")
    profile = get_profile(args.profile)
    train, test = _cli_dataset(args.dataset, profile, args.holdout, 0)
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size))
                 if v is not None}
    if args.what == "train" and args.masked:
        overrides.update(masked=True, lambda_mask=0.1 if args.lambda_mask is None
                         else args.lambda_mask)
    if args.what == "train" and args.lambda_id is not None:
        overrides["lambda_id"] = args.lambda_id
    suffix = "" if args.what == "train" else "-classifier"
    run_dir = Path(args.run_dir or f"runs/gan/{profile.name}-{args.dataset}{suffix}")
    start, accuracy = time.perf_counter(), None
    if args.what == "train":
        config = GANConfig.from_profile(profile, **overrides)
        result = train_gan(train, config, run_dir, progress=not args.no_progress,
                           device=args.device, identity_net=args.identity_net)
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


def _load_editor(parser, spec: str):
    from ..engine.gan_training import PRETRAINED, load_generator, pretrained

    if spec in PRETRAINED:
        return pretrained(spec)
    if not Path(spec).exists():
        parser.error(f"--generator: no file or folder {spec} (shipped: {sorted(PRETRAINED)})")
    return load_generator(spec)


def _evaluate(parser, args):
    """``gan evaluate``: the editors' quality table (and a JSON report)."""
    from ..engine.face_net import shipped_face_net
    from ..engine.gan_training import pretrained
    from ..experiments.baselines import trained_model
    from ..experiments.gan_augmentation import editor_quality, held_out_faces
    from .book_data import book_splits

    if not args.generator:
        parser.error("evaluate needs at least one --generator")
    editors = {spec: _load_editor(parser, spec) for spec in args.generator}
    profile = get_profile(args.profile)
    start = time.perf_counter()
    splits = book_splits(profile, "lfw")
    runs_dir = Path(args.runs_dir or "runs/gan-evaluate") / f"{profile.name}-lfw"
    hasher = trained_model("dfh", splits, max(profile.bits), profile, runs_dir)
    summary, details = editor_quality(editors, pretrained("attributes-gpu-celeba"), hasher,
                                      shipped_face_net(), splits, held_out_faces(profile))
    seconds = time.perf_counter() - start
    for name, row in summary.items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    print(f"judges: attributes-gpu-celeba (edit success on {profile.name} held-out CelebA), "
          f"dfh {max(profile.bits)} bits and the face net (identity on {len(splits.query)} "
          f"LFW queries); {seconds:.0f} s")
    if args.out:
        report = {"profile": profile.name, "seconds": round(seconds, 1), "summary": summary,
                  "details": details}
        Path(args.out).write_text(json.dumps(report, indent=1, default=float))
    return summary
