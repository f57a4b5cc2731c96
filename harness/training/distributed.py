"""Data-parallel training under ``torchrun``: the launch, the collectives, and the one writer.

``torchrun --nproc-per-node=N scripts/run_training.py ...`` starts N copies of the training
command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their
environment (``launched``). ``launch`` joins them into one process group (gloo on CPU, NCCL for
``training.device: cuda``) and makes that ``World`` the ``current()`` one until the run ends.
Without those variables, or with ``WORLD_SIZE=1``, nothing here imports ``torch.distributed``
and every helper is the identity: the single-process path is the one it always was.

What the trainer asks of the world:

- ``share``: this rank's slice of a global minibatch (every rank shuffles with the same seed);
- ``reduce_gradients``: the sum over ranks of the gradients and of a few figures, in one
  all-reduce; each rank weights its loss by its share of the minibatch, so the sum is the
  single process's gradient whatever the shares' sizes (the last partial batch included);
- ``gather``: every rank's object, in rank order (episode returns, rollout masks);
- ``on_writer``: work that happens once, on rank 0 (integrity verification, evaluation, the
  gates, promotion, the records), its outcome broadcast so that every rank returns the same
  result or raises the same error, and so exits with the same code. The other ranks wait in the
  broadcast while rank 0 works.

Why an all-reduce after ``backward`` rather than ``DistributedDataParallel``: DDP divides the
summed gradients by the world size, which is the single process's mean only when every rank's
share is the same size (the last BC minibatch of an epoch is not); it also wraps the module,
while the loss here has parts (PPO's advantage normalisation over the global minibatch, the BC
term) that must be weighted per rank. One flat all-reduce per optimiser step is also what DDP
does for networks this small (one bucket).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from harness.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, HarnessError

if TYPE_CHECKING:
    import torch

    from harness.config import Config

T = TypeVar("T")

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class World:
    """The processes of one data-parallel run, as this process sees them."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    """Where the collectives' buffers live: ``cpu`` (gloo) or ``cuda:<local rank>`` (NCCL)."""

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def writer(self) -> bool:
        """Rank 0: the one process that verifies, evaluates, gates, promotes and logs."""
        return self.rank == 0


SINGLE = World()
_current = SINGLE


class PeerFailed(HarnessError):
    """Rank 0's writer work failed; the other ranks raise this with its exit code (its one
    line was printed by rank 0)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def current() -> World:
    """The world of the run in progress (``SINGLE`` outside ``launch``)."""
    return _current


def launched(environ: dict[str, str] | None = None) -> World:
    """The world torchrun describes in the environment; ``SINGLE`` when it describes none."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return SINGLE
    try:
        rank, size, local = (int(env.get(k, "0")) for k in LAUNCH_VARIABLES)
    except ValueError:
        values = ", ".join(f"{k}={env.get(k)!r}" for k in LAUNCH_VARIABLES)
        raise HarnessError(f"torchrun environment: not integers: {values}") from None
    if size < 1 or not 0 <= rank < size or local < 0:
        raise HarnessError(f"torchrun environment: RANK {rank} of WORLD_SIZE {size}")
    return World(rank, size, local)


def check_num_envs(config: Config, world: World) -> None:
    """PPO splits ``ppo.num_envs`` evenly over the ranks; refuse a count that does not split."""
    num_envs = config.ppo.num_envs
    if num_envs % world.size:
        raise HarnessError(
            f"{config.source or 'config'}: ppo.num_envs {num_envs} does not split over "
            f"{world.size} processes; give a multiple of {world.size}"
        )


def resolve_device(device: str, world: World) -> str:
    """``training.device`` as the collectives use it: ``cpu`` or ``cuda:<local rank>``."""
    if device == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        if device == "auto":
            return "cpu"
        raise HarnessError("training.device is cuda, but torch sees no CUDA device")
    return f"cuda:{world.local_rank}"


@contextlib.contextmanager
def launch(device: str = "cpu", world: World | None = None) -> Iterator[World]:
    """Join the process group torchrun started (nothing at all for a single process); make its
    world ``current()``; leave the group at the end, however the run ends."""
    global _current
    world = launched() if world is None else world
    if not world.distributed:
        yield SINGLE
        return
    import torch.distributed as dist

    where = resolve_device(device, world)
    world = World(world.rank, world.size, world.local_rank, where)
    if where.startswith("cuda"):
        import torch

        torch.cuda.set_device(where)  # NCCL's object collectives use the current device
    dist.init_process_group("nccl" if where.startswith("cuda") else "gloo")
    _current = world
    try:
        yield world
    finally:
        _current = SINGLE
        with contextlib.suppress(Exception):  # a dead peer: the job is failing already
            dist.destroy_process_group()


# --- the collectives (identities for a single process) ----------------------------------------


def share(indices: torch.Tensor, world: World | None = None) -> torch.Tensor:
    """This rank's contiguous slice of a global minibatch (sizes differ by at most one)."""
    import torch

    world = world or current()
    if not world.distributed:
        return indices
    return torch.tensor_split(indices, world.size)[world.rank]


def reduce_gradients(params: Sequence[torch.nn.Parameter], figures: Sequence[float]) -> list[float]:
    """Sum every parameter's gradient and ``figures`` over the ranks, in one all-reduce.

    Summed in float64: for two ranks that is the float32 sum correctly rounded, the same
    rounding a single process's backward makes when it adds the two halves' contributions.
    """
    world = current()
    if not world.distributed:
        return list(figures)
    import torch
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).double() for g in grads] + [torch.tensor(figures).double()])
    flat = flat.to(world.device)
    dist.all_reduce(flat)
    flat = flat.cpu()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        if p.grad is not None:  # a parameter the loss does not reach keeps no gradient
            p.grad = flat[offset : offset + g.numel()].reshape(g.shape).to(g.dtype)
        offset += g.numel()
    return flat[offset:].tolist()


def gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` for a single process."""
    world = current()
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def on_writer(work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 only; every rank returns its result or fails as it failed.

    Rank 0 re-raises its own exception (its CLI prints the one line, or writes the traceback);
    the others raise ``PeerFailed`` with the same exit code.
    """
    world = current()
    if not world.distributed:
        return work()
    outcome: Any = None
    error: BaseException | None = None
    if world.writer:
        try:
            outcome = ("ok", work())
        except BaseException as exc:  # every failure must reach the peers
            error = exc
            outcome = ("error", _exit_code(exc), str(exc))
    outcome = _broadcast(outcome)
    if error is not None:
        raise error
    if outcome[0] == "error":
        raise PeerFailed(f"rank 0 stopped: {outcome[2]}", outcome[1])
    return outcome[1]


def agree(code: int) -> int:
    """The exit code every rank returns: the highest any rank reached (identity alone)."""
    world = current()
    if not world.distributed:
        return code
    return max(gather(code))


def _broadcast(obj: Any) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, HarnessError):
        return exc.exit_code
    if isinstance(exc, OSError):
        return EXIT_BAD_INPUT
    return EXIT_INTERNAL
