"""Data-parallel training under ``torchrun`` (DistributedDataParallel).

:func:`dfh_lib.engine.train.fit` uses this module when it runs under
``torchrun --nproc_per_node=N`` (``WORLD_SIZE`` > 1 in the environment);
a plain single process never touches it. What N processes do:

* **Batches.** Every rank computes the same seeded epoch order and the same
  global batches (``config.batch_size``, independent of N) and takes its
  contiguous share of each (:func:`shard_slice`; shares differ by at most one
  image). Each image is trained on exactly once per epoch, by one rank.
* **Loss on the global batch.** Hash losses are per batch (pairwise losses
  need every pair), so each rank gathers all ranks' codes with an
  autograd-aware ``all_gather`` (:func:`gather`) and computes the loss on
  the whole global batch, with the global labels and indices. The gather's
  backward sums the N identical gradients of a rank's own codes, DDP then
  averages over N: the model gradient equals the single-process gradient of
  the same global batch up to float rounding. Loss parameters get the same
  gradient on every rank; it is averaged too (:meth:`DataParallel.average_loss_gradients`)
  so the ranks cannot drift apart.
* **What is not the same as one process.** BatchNorm normalises each rank's
  share, not the global batch: on CUDA the model's BatchNorm layers run as
  ``SyncBatchNorm`` during :func:`fit` (exact match; put back afterwards),
  on CPU (gloo, which SyncBatchNorm does not support) they stay per share
  and rank 0's running statistics are kept. Random augmentation is drawn for
  the whole global batch on every rank (same generator state), so it matches;
  dropout and anything else drawing from the global torch RNG draws per rank
  (re-seeded from seed, epoch and rank each epoch, so a resumed run draws the
  same masks).
* **Rank 0** validates, writes ``checkpoint.pt`` / ``best.pt`` and prints;
  its epoch record (with the validation metrics, hence the best-epoch
  decision) is broadcast so every rank's history is the same. On resume
  every rank loads the same checkpoint.
"""
from __future__ import annotations

import atexit
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["Context", "from_env", "setup", "teardown", "is_main_process",
           "main_process_first", "rank_seed", "shard_sizes", "shard_slice", "shard",
           "check_batches", "gather", "broadcast_object", "broadcast_state",
           "broadcast_buffers", "convert_sync_batchnorm", "DataParallel", "torchrun_command"]

_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


# ----------------------------------------------------------------------------
# where this process stands
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """This process's place in a ``torchrun`` job (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether there are several processes (DDP is used)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: validates, writes checkpoints and prints."""
        return self.rank == 0

    def device(self, device) -> torch.device:
        """The device this rank trains on: ``cuda:LOCAL_RANK`` for CUDA under
        torchrun (one GPU per process), else ``device`` unchanged."""
        device = torch.device(device)
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device


def from_env(environ=None) -> Context:
    """The :class:`Context` torchrun describes in ``WORLD_SIZE`` / ``RANK`` /
    ``LOCAL_RANK``; ``Context()`` (rank 0 of 1) without them.

    Raises:
        ValueError: the variables are partly set or not integers.
    """
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return Context()
    try:
        world = int(environ["WORLD_SIZE"])
        rank = int(environ.get("RANK", "0" if world == 1 else ""))
        local = int(environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ValueError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets "
                         f"them); got {[environ.get(k) for k in _ENV]}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; got "
                         f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
    return Context(rank, world, local)


def is_main_process() -> bool:
    """True in a single process and on rank 0 under torchrun."""
    return from_env().is_main


def setup(device) -> Context:
    """Join the torchrun job: ``init_process_group`` (NCCL for a CUDA device,
    gloo otherwise) when ``WORLD_SIZE`` > 1 and not done yet. Idempotent;
    the group lives until :func:`teardown` (registered at exit), so several
    :func:`~dfh_lib.engine.train.fit` calls in one process share it."""
    ctx = from_env()
    if not ctx.enabled:
        return ctx
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run without torchrun")
    device = ctx.device(device)
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"data-parallel training runs on cuda (NCCL) or cpu (gloo), not "
                         f"{device.type}; set DFH_DEVICE=cpu or run without torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        if device.index >= torch.cuda.device_count():
            raise ValueError(f"process LOCAL_RANK={ctx.local_rank} has no GPU: "
                             f"{torch.cuda.device_count()} visible; start at most that many "
                             "processes per node (--nproc_per_node) or set DFH_DEVICE=cpu")
        torch.cuda.set_device(device)  # collectives and barriers use the current device
    if dist.is_initialized():
        if dist.get_world_size() != ctx.world_size or dist.get_rank() != ctx.rank:
            raise RuntimeError("the process group does not match WORLD_SIZE/RANK")
        if dist.get_backend() != backend:
            raise ValueError(f"the process group uses {dist.get_backend()} but training on "
                             f"{device.type} needs {backend}; use one device for the whole job")
        return ctx
    dist.init_process_group(backend)
    atexit.register(teardown)
    return ctx


def teardown() -> None:
    """Leave the process group (no-op when there is none)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (e.g. downloads or caches data), the other
    ranks after it; a plain block without a process group."""
    import torch.distributed as dist

    active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    main = not active or dist.get_rank() == 0
    if active and not main:
        _barrier()
    yield
    if active and main:
        _barrier()


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """The global torch seed of ``rank`` in ``epoch`` (dropout and other
    global-RNG draws): distinct per rank and epoch, fixed by the run's seed."""
    return (seed * 1_000_003 + epoch * 65_537 + rank * 257 + 1) % 2**63


# ----------------------------------------------------------------------------
# sharding and collectives
# ----------------------------------------------------------------------------

def shard_sizes(n: int, world_size: int) -> list[int]:
    """How many of ``n`` items each of ``world_size`` ranks takes: the first
    ``n % world_size`` ranks one more (as ``torch.tensor_split``)."""
    if n < 0 or world_size < 1:
        raise ValueError(f"need n >= 0 and world_size >= 1; got {n}, {world_size}")
    return [n // world_size + (r < n % world_size) for r in range(world_size)]


def shard_slice(n: int, rank: int, world_size: int) -> slice:
    """The contiguous part of a global batch of ``n`` that ``rank`` trains on.
    The ranks' slices are disjoint and cover ``0..n-1`` in order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size; got rank={rank}, "
                         f"world_size={world_size}")
    sizes = shard_sizes(n, world_size)
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """``rank``'s contiguous share of ``batch`` (first dimension)."""
    return batch[shard_slice(len(batch), rank, world_size)]


def check_batches(num_images: int, batch_size: int, world_size: int) -> None:
    """Refuse a batch size whose smallest global batch (``num_images`` cut
    into ``ceil(num_images / batch_size)`` near-equal batches) leaves some
    rank an empty share."""
    smallest = num_images // -(-num_images // batch_size) if num_images else 0
    if smallest < world_size:
        raise ValueError(f"the smallest global batch has {smallest} images, fewer than the "
                         f"{world_size} processes; raise batch_size or use fewer processes")


def gather(part: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate every rank's ``part`` (rank r's has ``sizes[r]`` rows) in
    rank order, on every rank, keeping the autograd graph: the backward pass
    sends each rank the summed gradient of its own rows
    (``torch.distributed.nn.functional.all_gather``). Uneven parts are padded
    to the longest for the collective and cut back."""
    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_nn

    if part.shape[0] != sizes[dist.get_rank()]:
        raise ValueError(f"rank {dist.get_rank()} has {part.shape[0]} rows, expected "
                         f"{sizes[dist.get_rank()]}")
    pad = max(sizes) - part.shape[0]
    if pad:
        part = torch.cat([part, part.new_zeros((pad, *part.shape[1:]))])
    with warnings.catch_warnings():  # deprecated in favour of a private API in torch >= 2.9
        warnings.simplefilter("ignore", FutureWarning)
        parts = dist_nn.all_gather(part)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def broadcast_object(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank (picklable objects)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_state(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite ``module``'s parameters and persistent buffers with rank ``src``'s."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=src)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Overwrite ``module``'s buffers (e.g. BatchNorm running statistics) with rank ``src``'s."""
    import torch.distributed as dist

    with torch.no_grad():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=src)


def convert_sync_batchnorm(model: torch.nn.Module) -> Callable[[], None]:
    """Swap ``model``'s BatchNorm layers for ``torch.nn.SyncBatchNorm`` in
    place (``convert_sync_batchnorm``; parameters and running statistics are
    shared, not copied) and return a function that puts the original layers
    back, trained values included."""
    from torch.nn.modules.batchnorm import _BatchNorm

    originals = [(parent, name, child) for parent in model.modules()
                 for name, child in parent.named_children()
                 if isinstance(child, _BatchNorm) and not isinstance(child, torch.nn.SyncBatchNorm)]
    if not originals:
        return lambda: None
    if torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) is not model:
        raise ValueError("convert_sync_batchnorm replaced the model itself")

    def restore() -> None:
        for parent, name, child in originals:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)

    return restore


# ----------------------------------------------------------------------------
# the DDP side of a training run
# ----------------------------------------------------------------------------

class DataParallel:
    """A run's model wrapped in ``DistributedDataParallel``, with the rank's
    share of each global batch and the gather of the codes.

    Creating it is collective (every rank at once): it converts BatchNorm to
    SyncBatchNorm on CUDA, wraps the model (DDP broadcasts rank 0's weights)
    and broadcasts rank 0's loss parameters and persistent buffers.
    :meth:`close` unwraps and puts the BatchNorm layers back.
    """

    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module, ctx: Context,
                 device: torch.device):
        from torch.nn.parallel import DistributedDataParallel

        self.ctx = ctx
        cuda = device.type == "cuda"
        self._restore = convert_sync_batchnorm(model) if cuda else (lambda: None)
        self.module = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        broadcast_state(loss)
        in_model = {id(p) for p in model.parameters()}
        self._loss_params = [p for p in loss.parameters()
                             if p.requires_grad and id(p) not in in_model]

    def share(self, n: int) -> slice:
        """This rank's part of a global batch of ``n``."""
        return shard_slice(n, self.ctx.rank, self.ctx.world_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def gather(self, u: torch.Tensor, n: int) -> torch.Tensor:
        """The codes of the whole global batch of ``n``, on every rank."""
        return gather(u, shard_sizes(n, self.ctx.world_size))

    def average_loss_gradients(self) -> None:
        """Average the loss parameters' gradients over ranks (they are already
        equal: the loss sees the same global batch everywhere)."""
        import torch.distributed as dist

        for p in self._loss_params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(self.ctx.world_size)

    def close(self) -> None:
        """Unwrap the model and put its original BatchNorm layers back."""
        self.module = None
        self._restore()


def torchrun_command(nproc: int, module_args: list[str]) -> list[str]:
    """``torchrun --standalone --nproc_per_node=N -m dfh_lib <module_args>``."""
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ValueError(f"the number of processes must be a positive integer; got {nproc!r}")
    return ["torchrun", "--standalone", f"--nproc_per_node={nproc}", "-m", "dfh_lib",
            *module_args]
