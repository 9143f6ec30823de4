"""Command line: ``python -m dfh_lib {info,train,baselines,reproduce,gan} ...``
(or ``dfh ...``). Each command imports what it needs when it runs, so
``info`` stays fast."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main_info(argv=None) -> None:
    """``python -m dfh_lib info``: versions, device and which datasets are present."""
    argparse.ArgumentParser(prog="python -m dfh_lib info",
                            description="Versions, device and which datasets are present."
                            ).parse_args(argv)
    import torch

    from ..core import data
    from ..core.profiles import get_profile
    from ..core.runtime import describe_device, get_device
    from ..core.version import __version__

    print(f"dfh_lib {__version__} | torch {torch.__version__} | device "
          f"{describe_device(get_device())} | profile {get_profile().name}")
    print(f"data folder: {data.data_dir()} | cache: {data.cache_dir()}")
    for name in sorted(data.DATASETS):
        if name != "image_folder":
            print(f"  {name:15s} {'present' if data.available(name) else 'missing'}")


def main_train(argv=None):
    """``python -m dfh_lib train --method dpsh --dataset synthfaces --bits 12``."""
    from ..core.profiles import get_profile
    from ..engine.train import train_method
    from .book_data import book_splits

    parser = argparse.ArgumentParser(prog="python -m dfh_lib train",
                                     description="Train one hashing method and report val mAP.")
    parser.add_argument("--method", required=True, help="loss name, e.g. dpsh")
    parser.add_argument("--dataset", default=None,
                        help="registered dataset name (default: $DFH_DATASET, else lfw "
                             "when present, else synthfaces)")
    parser.add_argument("--bits", type=int, default=12)
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu (default: $DFH_PROFILE)")
    parser.add_argument("--run-dir", default=None, help="checkpoint folder (resumable)")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    splits = book_splits(profile, args.dataset)
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    _, _, history = train_method(args.method, splits, args.bits, profile, args.run_dir,
                                 **overrides)
    best = history.records[history.best_epoch - 1]
    print(f"{args.method} {args.bits} bits on {splits.description}: best epoch "
          f"{best['epoch']}, val mAP {best['val_mAP']:.4f}")
    return history


def _write_table(rows: list[dict], provenance, out: Path) -> None:
    """``out.csv/.md/.json`` (rows + provenance) and ``out.png`` (mAP against
    bits), then print the Markdown table."""
    from .results import results_table, save_results
    from .viz import plot_metric_vs_bits

    table = results_table(rows, provenance, index=["method", "bits"])
    save_results(table, out)
    plot_metric_vs_bits(table).savefig(out.with_suffix(".png"), dpi=100)
    print(out.with_suffix(".md").read_text())


def main_baselines(argv=None):
    """``python -m dfh_lib baselines --dataset lfw --bits 12,24,36,48 --profile cpu``:
    trains and evaluates the baselines, writes ``<out>.csv/.md/.json`` and
    ``<out>.png`` (mAP against bits) and prints the Markdown table."""
    from ..core.runtime import setup_notebook
    from ..experiments.baselines import DEEP_BASELINES, baselines
    from .book_data import book_splits
    from .results import Provenance

    parser = argparse.ArgumentParser(prog="python -m dfh_lib baselines",
                                     description=main_baselines.__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="default: $DFH_DATASET, else lfw "
                        "when present, else synthfaces")
    parser.add_argument("--bits", default="12,24,36,48", help="comma-separated code lengths")
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu")
    parser.add_argument("--methods", default=",".join(DEEP_BASELINES))
    parser.add_argument("--out", default=None, help="output path without suffix "
                        "(default: results/baselines-<dataset>-<profile>)")
    args = parser.parse_args(argv)
    run = setup_notebook("baselines", args.profile)
    splits = book_splits(run.profile, args.dataset)
    bits = tuple(int(b) for b in args.bits.split(","))
    tag = f"{splits.train.name}-{run.profile.name}"
    result = baselines(splits, bits, run.profile, run.run_dir(tag),
                       tuple(args.methods.split(",")))
    h, w = run.profile.image_size
    provenance = Provenance.of(run, splits, "query vs database",
                               epochs=run.profile.epochs, input=f"{h}x{w}")
    _write_table(result.rows, provenance, Path(args.out or f"results/baselines-{tag}"))
    return result


def main_reproduce(argv=None):
    """``python -m dfh_lib reproduce --dataset lfw --bits 12,24,36,48 --profile cpu``:
    trains (or loads) DFH-GANs and the baselines, writes ``<out>.csv/.md/.json``
    and ``<out>.png`` (mAP against bits) and prints the Markdown table."""
    from ..core.runtime import setup_notebook
    from ..experiments.baselines import DEEP_BASELINES
    from ..experiments.reproduce import REPRODUCE_PARTS, gan_augment_fn, reproduce
    from .book_data import book_splits
    from .results import Provenance

    parser = argparse.ArgumentParser(prog="python -m dfh_lib reproduce",
                                     description=main_reproduce.__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="lfw, facescrub, youtube_faces, "
                        "synthfaces, ... (default: $DFH_DATASET, else lfw when present, "
                        "else synthfaces)")
    parser.add_argument("--bits", default="12,24,36,48", help="comma-separated code lengths")
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu")
    parser.add_argument("--methods", default=",".join(DEEP_BASELINES),
                        help="deep baselines to compare (comma-separated; '' for none)")
    parser.add_argument("--gan-checkpoint", default="pretrained",
                        help="generator for the GAN-augmented fine-tuning: 'pretrained' "
                        "(the StarGAN shipped in dfh_lib/pretrained, default), a checkpoint "
                        "path (python -m dfh_lib gan train), or 'none'")
    parser.add_argument("--gan-classifier", default=None, help="attribute classifier "
                        "checkpoint, for datasets without attribute labels (e.g. lfw; "
                        "default with 'pretrained': the shipped one)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every run "
                        "(the split stays the same; a seed other than 0 adds -seed<N> to "
                        "the run and output names)")
    parser.add_argument("--out", default=None, help="output path without suffix "
                        "(default: results/reproduce-<profile>-<dataset>[-seed<N>])")
    parser.add_argument("--runs-dir", default=None, help="checkpoint folder (default: "
                        "runs/reproduce, or $DFH_RUNS_DIR/reproduce)")
    parser.add_argument("--reuse", action="append", default=[], metavar="PART=DIR",
                        help="train-or-load one part of the table in DIR instead, e.g. "
                        "baselines=runs/ch2/cpu-lfw (the book's chapter runs); parts: "
                        + ", ".join(REPRODUCE_PARTS) + "; repeatable")
    args = parser.parse_args(argv)
    try:
        bits = tuple(int(b) for b in args.bits.split(","))
    except ValueError:
        parser.error(f"--bits must be comma-separated integers such as 12,24; got {args.bits!r}")
    reuse = {}
    for item in args.reuse:
        part, _, folder = item.partition("=")
        if part not in REPRODUCE_PARTS or not folder:
            parser.error(f"--reuse takes PART=DIR with PART one of {REPRODUCE_PARTS}; "
                         f"got {item!r}")
        reuse[part] = Path(folder)
    run = setup_notebook("reproduce", args.profile, seed=args.seed)
    profile = run.profile.with_overrides(seed=args.seed)
    splits = book_splits(profile, args.dataset)
    dataset = splits.train.name
    suffix = f"-seed{args.seed}" if args.seed else ""
    runs_dir = Path(args.runs_dir) if args.runs_dir else run.runs_dir
    runs_dir = runs_dir / f"{dataset}-{profile.name}{suffix}"
    augment_fn, gan_note = gan_augment_fn(args.gan_checkpoint, args.gan_classifier)
    if augment_fn is None:
        print(f"note: {gan_note}: DFH-GANs' last stage fine-tunes on the plain training set")
    methods = tuple(m for m in args.methods.split(",") if m)
    result = reproduce(splits, bits, profile, runs_dir, methods, augment_fn, reuse=reuse)
    h, w = profile.image_size
    provenance = Provenance.of(run, splits, "query vs database", epochs=profile.epochs,
                               input=f"{h}x{w}", seed=args.seed, gan=gan_note)
    rows = [{k: v for k, v in r.items() if k not in ("stage", "gan_augmented")}
            for r in result.rows]  # the provenance line says whether GAN data was used
    out = Path(args.out or f"results/reproduce-{profile.name}-{dataset}{suffix}")
    _write_table(rows, provenance, out)
    return result


def main_gan(argv=None):
    """``python -m dfh_lib gan {train,classifier} ...`` (see :mod:`.gan_cli`)."""
    from .gan_cli import main_gan as run

    return run(argv)


COMMANDS = {"info": main_info, "train": main_train, "baselines": main_baselines,
            "reproduce": main_reproduce, "gan": main_gan}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m dfh_lib {" + ",".join(COMMANDS) + "} [options]\n"
              "  info       versions, device, datasets present\n"
              "  train      train one method at one code length\n"
              "  baselines  train and evaluate the baselines; write the results table\n"
              "  reproduce  DFH-GANs (teacher, multi-layer KD, fine-tuning) + baselines; "
              "write the table\n"
              "  gan        train the StarGAN face editor or the attribute classifier")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    COMMANDS[argv[0]](argv[1:])
