"""Training speed of the StarGAN of ``dfh_lib.engine.gan_training`` (steps/s,
one step = one D update; G every ``n_critic``-th step, as in training).

    python bench/bench_gan.py [--device cuda] [--steps 20] [--threads 2]

Times the real step function of :func:`dfh_lib.engine.gan_training.train_gan`
on random face-sized data (no checkpointing) for the cpu-profile networks at
32 px and the gpu-profile networks at 64 px, at batch 16 and 32, and prints
steps/s and the minutes a profile's step count takes at that rate. A benchmark,
not a test.
"""
import argparse
import time

import numpy as np
import torch

from dfh_lib.core.runtime import describe_device, get_device
from dfh_lib.engine.gan_training import _gan_step
from dfh_lib.nn.gan import GANConfig, build_gan


def steps_per_second(config, device, steps, warmup=5):
    rng = np.random.default_rng(0)
    n = 256
    data = {"images": torch.from_numpy(rng.integers(0, 256, (n, config.image_size,
                                                             config.image_size, 3), np.uint8)),
            "attrs": torch.from_numpy(rng.integers(0, 2, (n, len(config.attributes))
                                                   ).astype(np.float32))}
    if device.type != "cpu":
        data["images"] = data["images"].to(device)
    torch.manual_seed(0)
    G, D = (m.to(device) for m in build_gan(config))
    opt_g = torch.optim.Adam(G.parameters(), config.g_lr, (config.beta1, config.beta2))
    opt_d = torch.optim.Adam(D.parameters(), config.d_lr, (config.beta1, config.beta2))
    step_fn = _gan_step(G, D, opt_g, opt_d, data, config,
                        torch.Generator().manual_seed(0), device)
    for step in range(warmup):
        step_fn(step)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(warmup, warmup + steps):
        terms = step_fn(step)
    float(terms["d_loss"])  # as training: losses read back once per log row
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (x n_critic)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--sizes", default="32,64")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f"device: {describe_device(device)} | torch {torch.__version__}")
    profiles = {32: "cpu", 64: "gpu"}
    for size in map(int, args.sizes.split(",")):
        profile = profiles.get(size, "gpu")
        for batch in (16, 32):
            config = GANConfig.from_profile(profile, image_size=size, batch_size=batch)
            rate = steps_per_second(config, device, args.steps)
            minutes = config.steps / rate / 60
            print(f"{size} px  {profile}-profile nets  batch {batch:3d}  {rate:8.2f} steps/s"
                  f"  ({config.steps} steps: {minutes:6.1f} min)", flush=True)


if __name__ == "__main__":
    main()
