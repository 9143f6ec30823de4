"""Command line: ``python -m dfh_lib {info,train,baselines,reproduce} ...`` (or ``dfh ...``)."""
from __future__ import annotations

import argparse
import sys


def _info(argv) -> None:
    argparse.ArgumentParser(prog="python -m dfh_lib info",
                            description="Versions, device and which datasets are present.").parse_args(argv)
    import torch

    from . import __version__, data
    from .profiles import get_profile
    from .runtime import describe_device, get_device

    print(f"dfh_lib {__version__} | torch {torch.__version__} | device "
          f"{describe_device(get_device())} | profile {get_profile().name}")
    print(f"data folder: {data.data_dir()} | cache: {data.cache_dir()}")
    for name in sorted(data.DATASETS):
        if name != "image_folder":
            print(f"  {name:15s} {'present' if data.available(name) else 'missing'}")


def _baselines(argv) -> None:
    from .experiments import main_baselines

    main_baselines(argv)


def _reproduce(argv) -> None:
    from .distill import main_reproduce

    main_reproduce(argv)


def _train(argv) -> None:
    from .train import main_train

    main_train(argv)


COMMANDS = {"info": _info, "train": _train, "baselines": _baselines,
            "reproduce": _reproduce}


def _gan(argv) -> None:
    from .gan import main_gan

    main_gan(argv)


COMMANDS["gan"] = _gan  # train the StarGAN editor or its attribute classifier


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


if __name__ == "__main__":
    main()
