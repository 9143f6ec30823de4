"""Command line: ``python -m dfh_lib {info,train,...,index,search} ...``
(or ``dfh ...``). Each command imports what it needs when it runs, so
``info`` stays fast. A bad argument or input (unknown method or dataset,
missing data, unreadable image or checkpoint, ...) ends in one line
``error: <message>`` on stderr and exit status 2; a bug keeps its traceback
(``DFH_TRACEBACK=1`` shows it for every error)."""
from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
import warnings
from pathlib import Path

from .fetch_cli import main_fetch


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


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None, help="the data folder (default: "
                        "$DFH_DATA_DIR); with --dataset image_folder the folder of "
                        "<identity>/<image> files itself (e.g. your own photos)")
    parser.add_argument("--detect", action="store_true", help="with --dataset image_folder: "
                        "cut each photo to its face (OpenCV; pip install opencv-python-"
                        "headless); photos with no face or several are skipped")


def _splits(parser: argparse.ArgumentParser, args, profile):
    """The book's splits of ``--dataset`` read from ``--data-root``."""
    from .book_data import book_splits

    if args.detect and args.dataset != "image_folder":
        parser.error("--detect works with --dataset image_folder only")
    if args.dataset == "image_folder" and args.data_root is None:
        parser.error("--dataset image_folder needs --data-root DIR (one sub-folder of "
                     "images per identity)")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise FileNotFoundError(f"--data-root {args.data_root} is not a folder")
    return book_splits(profile, args.dataset, args.data_root,
                       **({"detect": True} if args.detect else {}))


def _parse_bits(text: str) -> tuple[int, ...]:
    """``"12,24"`` -> (12, 24); ValueError (one line) for anything else."""
    try:
        bits = tuple(int(b) for b in text.split(","))
    except ValueError:
        bits = ()
    if not bits or min(bits) < 1:
        raise ValueError(f"--bits must be comma-separated positive integers such as 12,24; "
                         f"got {text!r}")
    return bits


def _without_option(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value, written ``--opt N``, ``--opt=N``
    or as an abbreviation argparse accepted (``--print-t N``)."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = token.partition("=")
        if len(name) > 2 and name.startswith("--") and option.startswith(name):
            skip = not eq
            continue
        kept.append(token)
    return kept


def main_train(argv=None):
    """``python -m dfh_lib train --method dpsh --dataset synthfaces --bits 12``.

    Under ``torchrun`` (see ``--print-torchrun``) every process trains its
    share of each batch (:mod:`dfh_lib.engine.distributed`); only rank 0
    prints and writes."""
    import contextlib

    from ..core.profiles import get_profile
    from ..core.runtime import get_device
    from ..engine import distributed
    from ..engine.backbone import shared_backbone
    from ..engine.train import method_config, train_method
    from ..nn.losses.registry import LOSSES

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
    parser.add_argument("--print-torchrun", type=int, default=None, metavar="N",
                        help="print the torchrun command that trains the same on N GPUs "
                             "(one process each, data-parallel) and exit")
    _add_data_options(parser)
    args = parser.parse_args(argv)
    if args.method not in LOSSES:
        raise ValueError(f"unknown method {args.method!r}; choose one of {sorted(LOSSES)}")
    if args.bits < 1:
        raise ValueError(f"--bits must be a positive integer; got {args.bits}")
    if args.print_torchrun is not None:
        if args.print_torchrun < 1:
            raise ValueError(f"--print-torchrun takes the number of processes (GPUs), a "
                             f"positive integer; got {args.print_torchrun}")
        rest = _without_option(sys.argv[1:] if argv is None else list(argv), "--print-torchrun")
        print(shlex.join(distributed.torchrun_command(args.print_torchrun, ["train", *rest])))
        return None
    ctx = distributed.from_env()
    if ctx.enabled:  # launched by torchrun: join the job before loading data
        distributed.setup(get_device())
    quiet = contextlib.nullcontext() if ctx.is_main else contextlib.redirect_stdout(io.StringIO())
    with quiet:  # only rank 0 prints
        profile = get_profile(args.profile)
        with distributed.main_process_first():  # rank 0 fills caches first
            splits = _splits(parser, args, profile)
        overrides = {} if args.epochs is None else {"epochs": args.epochs}
        if method_config(args.method, args.bits, profile).network.startswith("face_embedding"):
            # under torchrun the ranks train the shared start together, rank 0 saves it
            overrides["backbone"] = shared_backbone(splits, profile)
        _, _, history = train_method(args.method, splits, args.bits, profile, args.run_dir,
                                     **overrides)
        best = history.records[history.best_epoch - 1]
        print(f"{args.method} {args.bits} bits on {splits.description}: best epoch "
              f"{best['epoch']}, val mAP {best['val_mAP']:.4f}")
    distributed.teardown()
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
    _add_data_options(parser)
    args = parser.parse_args(argv)
    bits = _parse_bits(args.bits)
    run = setup_notebook("baselines", args.profile)
    splits = _splits(parser, args, run.profile)
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
    import pandas as pd

    from ..experiments.benchmark import chosen_settings, shipped_tuning_log
    from ..experiments.reproduce import REPRODUCE_PARTS, gan_augment_fn, reproduce
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
                        "(the masked editor shipped in dfh_lib/pretrained, default), a checkpoint "
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
    parser.add_argument("--tuning-log", default=None, metavar="CSV",
                        help="the validation search whose chosen settings the baselines "
                        "train with (default: the one shipped for the profile and dataset, "
                        "if any; Chapter 2 writes runs/ch2/<profile>-<dataset>-compare/"
                        "tuning.csv)")
    parser.add_argument("--reuse", action="append", default=[], metavar="PART=DIR",
                        help="train-or-load one part of the table in DIR instead, e.g. "
                        "baselines=runs/ch2/cpu-lfw-compare/seed0 (the book's chapter runs); parts: "
                        + ", ".join(REPRODUCE_PARTS) + "; repeatable")
    _add_data_options(parser)
    args = parser.parse_args(argv)
    bits = _parse_bits(args.bits)
    reuse = {}
    for item in args.reuse:
        part, _, folder = item.partition("=")
        if part not in REPRODUCE_PARTS or not folder:
            parser.error(f"--reuse takes PART=DIR with PART one of {REPRODUCE_PARTS}; "
                         f"got {item!r}")
        reuse[part] = Path(folder)
    run = setup_notebook("reproduce", args.profile, seed=args.seed)
    profile = run.profile.with_overrides(seed=args.seed)
    splits = _splits(parser, args, profile)
    dataset = splits.train.name
    suffix = f"-seed{args.seed}" if args.seed else ""
    runs_dir = Path(args.runs_dir) if args.runs_dir else run.runs_dir
    runs_dir = runs_dir / f"{dataset}-{profile.name}{suffix}"
    augment_fn, gan_note = gan_augment_fn(args.gan_checkpoint, args.gan_classifier)
    if augment_fn is None:
        print(f"note: {gan_note}: DFH-GANs' last stage fine-tunes on the plain training set")
    methods = tuple(m for m in args.methods.split(",") if m)
    if args.tuning_log and not Path(args.tuning_log).is_file():
        parser.error(f"--tuning-log: no file {args.tuning_log}")
    search = (pd.read_csv(args.tuning_log) if args.tuning_log
              else shipped_tuning_log(profile.name, dataset))
    settings = None if search is None else chosen_settings(search, bits)
    if settings is None:
        print(f"note: no tuning log ships for {profile.name}/{dataset}: baselines keep "
              "their papers' settings")
    result = reproduce(splits, bits, profile, runs_dir, methods, augment_fn, reuse=reuse,
                       settings=settings)
    h, w = profile.image_size
    provenance = Provenance.of(run, splits, "query vs database", steps=profile.steps,
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


def main_index(argv=None):
    """``python -m dfh_lib index --run-dir RUN --images DIR --out FILE.npz``
    (see :mod:`.search_cli`)."""
    from .search_cli import main_index as run

    return run(argv)


def main_search(argv=None):
    """``python -m dfh_lib search --index FILE.npz --image IMG`` (see :mod:`.search_cli`)."""
    from .search_cli import main_search as run

    return run(argv)


def main_open_set(argv=None):
    """``python -m dfh_lib open-set --profile cpu --methods dfh,greedyhash --bits 12,48``:
    hash heads on the benchmark's own embedding and on the shipped face
    network (trained on other people), each judged on the LFW benchmark
    (closed set) and on LFW people in no training set (open set); writes
    ``<out>.csv`` (every run) and ``<out>.md`` (mean ± std over seeds)."""
    from ..core.data.lfw_protocols import open_set_splits
    from ..core.runtime import setup_notebook
    from ..engine.face_net import shipped_face_net_file
    from ..experiments.benchmark import chosen_settings, shipped_tuning_log
    from ..experiments.open_set import (comparison_backbones, open_set_benchmark,
                                         summarize_open_set)
    from .book_data import book_splits

    parser = argparse.ArgumentParser(prog="python -m dfh_lib open-set",
                                     description=main_open_set.__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu")
    parser.add_argument("--methods", default="dfh,greedyhash", help="comma-separated")
    parser.add_argument("--bits", default="12,48", help="comma-separated code lengths")
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds "
                        "(default: the profile's)")
    parser.add_argument("--face-net", default=None, metavar="FILE", help="face embedding "
                        "file (default: the shipped one, dfh_lib/pretrained/face-net-cpu-lfw)")
    parser.add_argument("--fine-tune-steps", type=int, default=None, metavar="STEPS",
                        help="steps of the third backbone, the face network fine-tuned on "
                        "the benchmark's training people (default: half the profile's "
                        "backbone steps; 0: leave it out)")
    parser.add_argument("--out", default=None, help="output path without suffix "
                        "(default: results/open-set-<profile>-lfw)")
    parser.add_argument("--runs-dir", default=None, help="checkpoint folder (default: "
                        "runs/open-set/<profile>-lfw)")
    parser.add_argument("--data-root", default=None, help="the data folder (default: "
                        "$DFH_DATA_DIR); needs lfw/")
    args = parser.parse_args(argv)
    bits = _parse_bits(args.bits)
    try:
        seeds = None if args.seeds is None else tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers; got {args.seeds!r}")
    if args.fine_tune_steps is not None and args.fine_tune_steps < 0:
        parser.error(f"--fine-tune-steps must be >= 0; got {args.fine_tune_steps}")
    face_net = Path(args.face_net) if args.face_net else shipped_face_net_file()
    if not face_net.is_file():
        raise FileNotFoundError(f"--face-net: no file {face_net}")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise FileNotFoundError(f"--data-root {args.data_root} is not a folder")
    run = setup_notebook("open-set", args.profile)
    profile = run.profile
    splits = book_splits(profile, "lfw", args.data_root)
    open_set = open_set_splits(args.data_root)
    print(open_set)
    search = shipped_tuning_log(profile.name, "lfw")
    settings = None if search is None else chosen_settings(search, bits)
    runs_dir = Path(args.runs_dir) if args.runs_dir else run.runs_dir / f"{profile.name}-lfw"
    backbones = comparison_backbones(splits, face_net, profile, runs_dir, args.fine_tune_steps,
                                     progress=True)
    rows, _ = open_set_benchmark(tuple(m for m in args.methods.split(",") if m), splits,
                                 open_set, backbones, bits, profile, runs_dir,
                                 seeds or profile.seeds, settings)
    out = Path(args.out or f"results/open-set-{profile.name}-lfw")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.round(6).to_csv(out.with_suffix(".csv"), index=False)
    table = summarize_open_set(rows)
    text = (f"profile {profile.name}, LFW, device {run.device}; closed set: {splits}; "
            f"{open_set}\n\n" + table.round(3).reset_index().to_markdown(index=False))
    out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return rows


def main_face_net(argv=None):
    """``python -m dfh_lib face-net --profile cpu --run-dir DIR --out DIR``:
    trains (or resumes / loads) the face embedding network on LFW people
    outside every evaluation set, prints its report (LFW pairs verification
    on the held-out folds, open-set and benchmark float mAP) and with
    ``--out`` writes ``embedding.pt``, ``log.csv`` and ``report.json``."""
    import json

    from ..core.data.lfw_protocols import face_net_protocol
    from ..core.runtime import describe_device, setup_notebook
    from ..engine.face_net import face_net_report, save_face_net, train_face_net
    from .book_data import book_splits

    parser = argparse.ArgumentParser(prog="python -m dfh_lib face-net",
                                     description=main_face_net.__doc__.split("\n")[0])
    parser.add_argument("--profile", default=None, help="tiny, cpu or gpu")
    parser.add_argument("--run-dir", default=None, help="checkpoint folder (default: "
                        "runs/face-net/<profile>-lfw); an unfinished run there is resumed")
    parser.add_argument("--out", default=None, help="folder for embedding.pt, log.csv and "
                        "report.json (e.g. dfh_lib/pretrained/face-net-cpu-lfw)")
    parser.add_argument("--data-root", default=None, help="the data folder (default: "
                        "$DFH_DATA_DIR); needs lfw/")
    parser.add_argument("--steps", type=int, default=None, help="optimisation steps "
                        "(default: the profile's face_net_steps)")
    parser.add_argument("--min-train-images", type=int, default=2, choices=(1, 2),
                        help="1: also train on people with a single image (default 2)")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be a positive number of steps; got {args.steps}")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise FileNotFoundError(f"--data-root {args.data_root} is not a folder")
    run = setup_notebook("face-net", args.profile)
    profile = run.profile if args.steps is None else \
        run.profile.with_overrides(face_net_steps=args.steps)
    protocol = face_net_protocol(args.data_root, min_train_images=args.min_train_images)
    print(protocol)
    run_dir = Path(args.run_dir) if args.run_dir else \
        run.runs_dir / f"{run.profile.name}-lfw"
    model, history = train_face_net(protocol, profile, run_dir)
    benchmark = book_splits(run.profile, "lfw", args.data_root)
    report = face_net_report(model, protocol, benchmark)
    report.update(training_people=len(protocol.roles["train"]),
                  training_images=len(protocol.splits.train), best_epoch=history.best_epoch,
                  epochs=len(history.records), device=describe_device(run.device),
                  training_seconds=round(sum(r.get("time_s", 0.0) for r in history.records), 1))
    print(json.dumps(report, indent=1, default=str))
    if args.out:
        command = "python -m dfh_lib face-net " + " ".join(shlex.quote(a) for a in
                                                           (argv or sys.argv[2:]))
        print(f"wrote {save_face_net(model, history, args.out, report, command)}")
    return report


COMMANDS = {"info": main_info, "train": main_train, "baselines": main_baselines,
            "reproduce": main_reproduce, "gan": main_gan, "fetch": main_fetch,
            "index": main_index, "search": main_search,
            "face-net": main_face_net, "open-set": main_open_set}


def _user_error(err: BaseException) -> bool:
    """Whether ``err`` reports a bad argument or input (one line, exit 2)
    rather than a bug (traceback)."""
    from ..core.data import UnsafePickleError
    from ..core.data.face_detect import MissingDependencyError

    return isinstance(err, (ValueError, FileNotFoundError, NotADirectoryError,
                            IsADirectoryError, PermissionError, UnsafePickleError,
                            MissingDependencyError))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: python -m dfh_lib {" + ",".join(COMMANDS) + "} [options]\n"
              "  info       versions, device, datasets present\n"
              "  train      train one method at one code length\n"
              "  baselines  train and evaluate the baselines; write the results table\n"
              "  reproduce  DFH-GANs (teacher, multi-layer KD, fine-tuning) + baselines; "
              "write the table\n"
              "  gan        train the StarGAN face editor or the attribute classifier\n"
              "  face-net   train the face embedding network on people outside every "
              "evaluation set\n"
              "  open-set   hash heads judged on people in no training set (and closed set)\n"
              "  fetch      download and verify a dataset (lfw, orl, celeba, facescrub, ...)\n"
              "  index      encode a folder of photos with a trained run (a code file)\n"
              "  search     rank an indexed folder by Hamming distance to a photo",
              file=sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    try:  # a bad argument or input ends in one line; a bug keeps its traceback
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            COMMANDS[argv[0]](argv[1:])
    except Exception as err:
        if not _user_error(err) or os.environ.get("DFH_TRACEBACK"):
            raise
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
