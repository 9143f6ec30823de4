"""Training throughput of the hash networks through ``dfh_lib.engine.train.fit``.

    python bench/bench_train.py [--epochs 3] [--images 20 --identities 100]

Times whole epochs of the one training loop (data on the device, forward,
loss, backward, optimizer step; evaluation excluded) on synthfaces for the DDH
network at 32×32 and ResNet-18 at 64×64, and prints images/s with the device.
A benchmark, not a test: its numbers go in notes.
"""
import argparse
import time

import torch

import dfh_lib as dfh


def throughput(network, image_size, splits, epochs, batch_size, amp, device):
    model = dfh.models.build_model(network, 48, image_size=image_size,
                                   activation=None)
    loss = dfh.losses.build_loss("ddh", 48, splits.train.num_identities)
    config = dfh.train.TrainConfig(method="ddh", bits=48, network=network, epochs=epochs,
                                   batch_size=batch_size, image_size=image_size,
                                   eval_every=10_000, amp=amp)
    history = dfh.train.fit(model, loss, splits, config, progress=False, device=device)
    seconds = [r["time_s"] for r in history.records[1:]] or [history.records[0]["time_s"]]
    return len(splits.train) * len(seconds) / sum(seconds)  # first epoch = warm-up


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--identities", type=int, default=100)
    parser.add_argument("--images", type=int, default=20, help="images per identity")
    args = parser.parse_args()
    device = dfh.runtime.get_device()
    faces = dfh.data.load_synthfaces(args.identities, args.images, size=64)
    splits = dfh.data.retrieval_protocol(faces, num_query=1, num_val=1)
    print(f"device: {dfh.runtime.describe_device(device)} | torch {torch.__version__} | "
          f"{len(splits.train)} training images, 48 bits")
    cases = [("ddh", (32, 32), 128), ("resnet18", (64, 64), 128)]
    for network, size, batch in cases:
        for amp in ([False, True] if device.type == "cuda" else [False]):
            rate = throughput(network, size, splits, args.epochs, batch, amp, device)
            print(f"{network:9s} {size[0]}x{size[1]}  batch {batch}  amp {str(amp):5s} "
                  f"{rate:9.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
