"""Measure the throughput table behind the train-or-load cost estimates.

    python bench/bench_throughput.py [--threads 2] [--repeats 2] [--device cpu]

For each (network, input size) it times the real loop,
:func:`dfh_lib.engine.train.fit`, on synthfaces (``load_synthfaces`` +
``retrieval_protocol``): one warm-up epoch, then ``--epochs`` timed epochs
(the records' ``time_s``: forward, DFH loss, backward, optimizer step), and
the validation step exactly as ``fit`` runs it (:func:`evaluate` of the
validation queries against the training set: encode both, rank). Each case
is measured ``--repeats`` times and the faster is kept (the machine may be
busy). Writes ``dfh_lib/reference_results/throughput.json``, replacing the
entries of the measured device kind and keeping the others, which
:func:`dfh_lib.engine.cost.estimate_seconds` reads.
"""
import argparse
import datetime
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

import dfh_lib as dfh
from dfh_lib.core.data import load_synthfaces, retrieval_protocol
from dfh_lib.engine.encoding import evaluate, image_tensor
from dfh_lib.engine.train import TrainConfig, fit

OUT = Path(__file__).resolve().parents[1] / "dfh_lib" / "reference_results" / "throughput.json"
# network, input size, batch, (identities, images per identity) of the synthetic set
CASES = [("ddh", 32, 128, (100, 20)), ("small_resnet", 32, 128, (100, 20)),
         ("resnet18", 64, 64, (40, 12)), ("resnet50", 64, 64, (40, 12))]


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def measure(network, size, batch, splits, epochs, device) -> tuple[float, float]:
    """(training images/s, validation images/s) of one run."""
    bits = 48
    config = TrainConfig(method="dfh", bits=bits, network=network, epochs=1 + epochs,
                         batch_size=batch, image_size=(size, size), eval_every=10_000)
    model = dfh.models.build_model(network, bits, image_size=config.image_size,
                                   activation="tanh")
    loss = dfh.losses.build_loss("dfh", bits, splits.train.num_identities)
    history = fit(model, loss, splits, config, progress=False, device=device)
    seconds = sum(r["time_s"] for r in history.records[1:])  # epoch 1 = warm-up
    train_rate = len(splits.train) * epochs / seconds
    # validation as fit runs it: prepared tensors, batch max(batch, 256)
    val = (image_tensor(splits.val_query, config.image_size),
           torch.from_numpy(splits.val_query.labels))
    train = (image_tensor(splits.train, config.image_size), torch.from_numpy(splits.train.labels))
    evaluate(model, val, train, batch_size=max(batch, 256))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    evaluate(model, val, train, batch_size=max(batch, 256))
    val_rate = (len(val[1]) + len(train[1])) / (time.perf_counter() - start)
    return train_rate, val_rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--repeats", type=int, default=2, help="runs per case; the faster is kept")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--networks", nargs="*", help="only these networks (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = dfh.runtime.get_device(args.device)
    entries = []
    for network, size, batch, (ids, per_id) in CASES:
        if args.networks and network not in args.networks:
            continue
        faces = load_synthfaces(ids, per_id, size=size)
        splits = retrieval_protocol(faces, num_query=1, num_val=1)
        runs = [measure(network, size, batch, splits, args.epochs, device)
                for _ in range(args.repeats)]
        train_rate, val_rate = max(r[0] for r in runs), max(r[1] for r in runs)
        print(f"{network:12s} {size}x{size} batch {batch:3d}: train {train_rate:8.1f} img/s, "
              f"validation {val_rate:8.1f} img/s  (runs: "
              f"{', '.join(f'{t:.1f}/{v:.1f}' for t, v in runs)})", flush=True)
        entries.append({"network": network, "image_size": [size, size], "device": device.type,
                        "batch_size": batch, "train_images": len(splits.train),
                        "train_images_per_s": round(train_rate, 1),
                        "encode_images_per_s": round(val_rate, 1)})
    table = json.loads(args.out.read_text()) if args.out.exists() else {}
    measured = {n for n in (e["network"] for e in entries)}
    table["about"] = (
        "Images/s of one training step (train_images_per_s: forward, DFH loss, backward, "
        "Adam step, identity sampling; mean of the timed epochs after a warm-up epoch) and of "
        "fit's validation (encode_images_per_s: the validation queries plus the training set "
        "encoded and ranked, per image encoded), by network, input size and device kind, "
        "through dfh_lib.engine.train.fit on synthfaces. Written by "
        "bench/bench_throughput.py; read by dfh_lib.engine.cost.estimate_seconds.")
    table.setdefault("measured", {})[device.type] = {
        "date": datetime.date.today().isoformat(), "hardware": hardware(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "torch": torch.__version__, "epochs_timed": args.epochs, "repeats": args.repeats,
        "kept": "the faster of the repeats (a shared machine)"}
    table["entries"] = [e for e in table.get("entries", [])
                        if not (e["device"] == device.type and e["network"] in measured)] + entries
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
