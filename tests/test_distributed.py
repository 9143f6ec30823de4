"""Tests for data-parallel training (dfh_lib.engine.distributed + fit under
torchrun): 2 CPU processes with gloo, tiny synthetic data.

The multi-process tests launch ``python -m torch.distributed.run
--standalone --nproc_per_node=2`` on this very file (its ``__main__`` part is
the worker), so ``fit`` meets the real torchrun environment. They carry
``distributed_only`` (skipif) and skip where torch has no ``torch.distributed``
or no gloo.

Tolerance of "2 processes = 1 process with the same global batch": the net
here has no BatchNorm and no dropout (on CPU BatchNorm stays per share, see
the module docstring of dfh_lib.engine.distributed), so the only difference
is float32 rounding: the per-share products and the gather/all-reduce sum
the same terms in another order. Measured after 2 epochs (6 Adam steps,
lr 1e-2, weights up to 0.2): max |Δw| = 4.5e-8 (6e-8 at the last epoch),
equal codes, equal val mAP. We allow ``max |Δw| < 1e-5``: ~200x the
rounding seen, and far below a real difference (the same run with one
BatchNorm1d layer normalised per share moves the weights by 8e-2).
Codes (signs) and the validation mAP must be equal.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

SIZE, BITS, IDS, PER_ID, BATCH = 16, 8, 8, 8, 15  # 40 training images: batches 14/13/13
HERE = Path(__file__).resolve()


def _dist_ok() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


distributed_only = pytest.mark.skipif(not _dist_ok(), reason="torch.distributed with gloo "
                                      "is not available in this torch build")


# ---------------------------------------------------------------- the setup both sides use


class FlatNet(nn.Module):
    """(N, 3, S, S) -> (N, bits) in [-1, 1]; no BatchNorm, no dropout."""

    def __init__(self, bits=BITS, size=SIZE):
        super().__init__()
        self.bits = bits
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 32), nn.ReLU(),
                                  nn.Linear(32, bits), nn.Tanh())

    def forward(self, x):
        return self.body(x)


class PairsAndCentres(nn.Module):
    """DPSH (pairwise over the whole batch) + a pull to learnable class
    centres; records the indices it is given; at call ``kill_at`` the
    process kills itself (SIGKILL: no cleanup, like a lost machine)."""

    needs_index = True

    def __init__(self, kill_at=None):
        from dfh_lib.nn.losses.registry import build_loss

        super().__init__()
        self.pairs = build_loss("dpsh", BITS, IDS)
        self.centres = nn.Parameter(torch.zeros(IDS, BITS))
        self.kill_at, self.calls, self.seen = kill_at, 0, []

    def forward(self, u, labels, index=None):
        self.calls += 1
        if self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        self.seen.append(index.cpu().clone())
        value, terms = self.pairs(u, labels)
        centre = (u - torch.tanh(self.centres[labels])).pow(2).mean()
        return value + centre, {**terms, "centre": centre.detach()}


def make_splits():
    from dfh_lib.core.data import load_dataset
    from dfh_lib.core.data.dataset import retrieval_protocol

    faces = load_dataset("synthfaces", num_identities=IDS, images_per_identity=PER_ID, size=32)
    return retrieval_protocol(faces, num_query=2, num_val=1, seed=0)


def make_config():
    from dfh_lib.engine.train import TrainConfig

    return TrainConfig(method="pairs", bits=BITS, network="flat", epochs=2, batch_size=BATCH,
                       lr=1e-2, eval_every=1, seed=0, deterministic=True,
                       image_size=(SIZE, SIZE), augment=True)


def train_once(run_dir, kill_at=None) -> dict:
    """Seed, build, fit; what the comparisons need."""
    from dfh_lib.engine.train import encode, fit

    torch.set_num_threads(1)
    splits = make_splits()
    torch.manual_seed(0)
    model, loss = FlatNet(), PairsAndCentres(kill_at=kill_at)
    history = fit(model, loss, splits, make_config(), run_dir=run_dir, progress=False,
                  device="cpu")
    return {"model": model.state_dict(), "loss": loss.state_dict(),
            "records": [{k: v for k, v in r.items() if k != "time_s"} for r in history.records],
            "codes": encode(model, splits.query, image_size=(SIZE, SIZE)).sign(),
            "seen": loss.seen}


def torchrun(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "DFH_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def ddp_train(out: Path, kill_rank1_at=None) -> subprocess.CompletedProcess:
    """2-process run of :func:`train_once` in ``out/run``; each rank saves
    ``out/rank<r>.pt``. With ``kill_rank1_at``, rank 1 kills itself at that
    loss call (torchrun then stops rank 0 and fails). Not torchrun's
    ``--max-restarts``: its restarted gloo ranks often fail to reconnect
    (connectFullMesh "Connection refused", cf. pytorch/pytorch#167288)."""
    return torchrun(HERE, out, *([] if kill_rank1_at is None else [kill_rank1_at]))


# ---------------------------------------------------------------- no processes needed


@pytest.mark.parametrize("world", [1, 2, 3, 4, 5])
def test_shards_are_disjoint_contiguous_and_cover_the_batch(world):
    from dfh_lib.engine.distributed import shard, shard_sizes

    for n in range(0, 23):
        batch = torch.randperm(100)[:n]
        parts = [shard(batch, r, world) for r in range(world)]
        assert torch.equal(torch.cat(parts), batch)  # union = the batch, in order
        flat = torch.cat(parts).tolist()
        assert len(set(flat)) == len(flat) == n  # disjoint
        sizes = [len(p) for p in parts]
        assert sizes == shard_sizes(n, world) and max(sizes) - min(sizes) <= 1
        assert sizes == [len(t) for t in torch.tensor_split(batch, world)]


def test_context_from_torchrun_environment():
    from dfh_lib.engine.distributed import Context, check_batches, from_env

    assert from_env({}) == Context() and not Context().enabled and Context().is_main
    ctx = from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert ctx == Context(1, 2, 1) and ctx.enabled and not ctx.is_main
    assert ctx.device("cuda") == torch.device("cuda", 1) and ctx.device("cpu").type == "cpu"
    assert not from_env({"WORLD_SIZE": "1"}).enabled  # torchrun with one process: plain fit
    for bad in ({"WORLD_SIZE": "2"}, {"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "x"}):
        with pytest.raises(ValueError):
            from_env(bad)
    check_batches(40, 15, 2)
    with pytest.raises(ValueError, match="smallest global batch has 2 images, fewer than the 3"):
        check_batches(10, 2, 3)


def test_sync_batchnorm_is_put_back_with_its_trained_values():
    from dfh_lib.engine.distributed import convert_sync_batchnorm

    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3),
                          nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)))
    bn1, bn2 = model[1], model[2][1]
    restore = convert_sync_batchnorm(model)
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[2][1], nn.SyncBatchNorm)
    assert model[1].weight is bn1.weight and model[1].running_mean is bn1.running_mean
    with torch.no_grad():
        model[1].weight.add_(1)
        model[2][1].running_var.mul_(3)
    model.eval()
    restore()
    assert model[1] is bn1 and model[2][1] is bn2 and not bn1.training
    assert torch.equal(bn1.weight, torch.full((3,), 2.0))
    assert torch.equal(bn2.running_var, torch.full((2,), 3.0))
    assert convert_sync_batchnorm(nn.Linear(2, 2))() is None  # nothing to convert


def test_print_torchrun_prints_the_command_and_bad_values_are_one_line(capsys):
    from dfh_lib.interfaces import cli

    argv = ["train", "--method", "dpsh", "--bits", "24", "--print-torchrun", "4",
            "--run-dir", "runs/my run", "--dataset", "lfw"]
    cli.main(argv)
    out = capsys.readouterr().out
    assert out == ("torchrun --standalone --nproc_per_node=4 -m dfh_lib train --method dpsh "
                   "--bits 24 --run-dir 'runs/my run' --dataset lfw\n")
    cli.main(["train", "--method", "dpsh", "--print-torchrun=2"])
    assert capsys.readouterr().out.split() == [
        "torchrun", "--standalone", "--nproc_per_node=2", "-m", "dfh_lib", "train",
        "--method", "dpsh"]
    for bad in ("0", "-3"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["train", "--method", "dpsh", "--print-torchrun", bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err == (f"error: --print-torchrun takes the number of processes (GPUs), a "
                       f"positive integer; got {bad}\n")


# ---------------------------------------------------------------- 2 processes (gloo)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, the same global batches: the run DDP must reproduce."""
    from dfh_lib.engine.distributed import from_env

    assert not from_env().enabled
    threads = torch.get_num_threads()
    before = torch.are_deterministic_algorithms_enabled()
    try:
        return train_once(tmp_path_factory.mktemp("single"))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    if not _dist_ok():
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path_factory.mktemp("ddp")
    done = ddp_train(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@distributed_only
def test_two_processes_equal_one_process_with_the_same_global_batch(reference, ddp_run):
    _, (rank0, rank1) = ddp_run
    # the loss saw the same global batches (indices) on every rank as one process did
    assert len(rank0["seen"]) == len(reference["seen"]) == 6
    for a, b, c in zip(reference["seen"], rank0["seen"], rank1["seen"]):
        assert torch.equal(a, b) and torch.equal(a, c)
    # both ranks end with the same weights (rank 0's best)
    for part in ("model", "loss"):
        for k in rank0[part]:
            assert torch.equal(rank0[part][k], rank1[part][k]), (part, k)
    # ... and they equal one process's up to float rounding
    diff = max(float((rank0[part][k] - reference[part][k]).abs().max())
               for part in ("model", "loss") for k in reference[part])
    assert diff < 1e-5, diff
    assert torch.equal(rank0["codes"], reference["codes"])
    for mine, theirs in zip(rank0["records"], reference["records"]):
        assert mine.keys() == theirs.keys()
        assert mine["val_mAP"] == theirs["val_mAP"]
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    assert rank0["records"] == rank1["records"]  # rank 0's record broadcast


@distributed_only
def test_killed_and_resumed_ddp_run_equals_uninterrupted(ddp_run, tmp_path):
    from dfh_lib.engine.train import BEST, CHECKPOINT

    first, (whole, _) = ddp_run
    steps = 3  # batches per epoch
    killed = ddp_train(tmp_path, kill_rank1_at=steps + 2)  # rank 1 dies at epoch 2, step 2
    assert killed.returncode != 0 and not (tmp_path / "rank0.pt").exists()
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["epoch"] == 1
    done = ddp_train(tmp_path)  # the same command again: both ranks resume from epoch 1
    assert done.returncode == 0, done.stderr[-3000:]
    for r in range(2):
        again = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert len(again["seen"]) == steps  # the resumed ranks trained epoch 2 only
        for part in ("model", "loss"):
            for k in whole[part]:
                assert torch.equal(again[part][k], whole[part][k]), (r, part, k)
        assert again["records"] == whole["records"]
        assert torch.equal(again["codes"], whole["codes"])
    for name in (CHECKPOINT, BEST):
        a = torch.load(first / "run" / name, weights_only=True)
        b = torch.load(tmp_path / "run" / name, weights_only=True)
        assert a["epoch"] == b["epoch"] and all(
            torch.equal(a[part][k], b[part][k]) for part in ("model", "loss") for k in a[part])
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["epoch"] == 2


@distributed_only
def test_train_command_under_torchrun_prints_once_and_writes_on_rank_0(tmp_path):
    done = torchrun("-m", "dfh_lib", "train", "--method", "dpsh", "--dataset", "synthfaces",
                    "--profile", "tiny", "--epochs", "1", "--bits", "12",
                    "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if "dpsh 12 bits on synthfaces" in line]
    assert len(lines) == 1, done.stdout
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "backbone.pt", "best.pt", "checkpoint.pt"]  # the run carries its face embedding


# ---------------------------------------------------------------- the torchrun worker

if __name__ == "__main__":  # launched by ddp_train via torchrun: argv = out [kill_at]
    from dfh_lib.engine.distributed import from_env

    out_dir = Path(sys.argv[1])
    kill = len(sys.argv) > 2 and from_env().rank == 1
    result = train_once(out_dir / "run", kill_at=int(sys.argv[2]) if kill else None)
    torch.save(result, out_dir / f"rank{from_env().rank}.pt")
