"""Several training processes: ``torchrun --nproc_per_node N -m designspace train ...``, and the device settings.

torchrun starts N processes and tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (environment);
:func:`setup` joins them into one process group (NCCL between GPUs, gloo on CPUs), one GPU per local rank.
The model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged every step,
BatchNorm buffers broadcast from rank 0 at every forward), each process reads its shard of every epoch's
shuffle (a :class:`~torch.utils.data.DistributedSampler` seeded with the run's seed), and the figures of an
epoch (loss, top-1) are summed over the processes. Rank 0 alone prints, writes ``metrics.csv`` and the
checkpoints; every process reads the checkpoint on resume, so ``--out`` must be a folder they all see.

``--batch-size`` is the images of one optimizer step over all processes (each takes ``batch / N``): the
learning rate, the steps of an epoch and so the schedule do not depend on N, and a run resumes with another
number of processes on the same schedule.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from designspace.exceptions import DesignspaceError

__all__ = ["Dist", "amp_dtype", "cpu_has_bf16", "default_workers", "end_process", "setup", "torchrun_world"]

# Set when this process left a process group of several processes. Torch keeps that group's communication threads
# alive after destroy_process_group once DistributedDataParallel has wrapped a model (measured with torch 2.13 and
# gloo: 3 native threads still running after destroy_process_group and gc.collect(), none without the wrapper), and
# their teardown at interpreter exit aborts the process ("terminate called without an active exception", SIGABRT)
# in about 1 run in 20 on the 2-core development machine: torchrun then reports a failed run whose work was done.
_LEFT_GROUP = False


@dataclass
class Dist:
    """This process's place among the training processes.

    Attributes:
        rank: global rank (0 writes files and prints).
        world: number of processes.
        local_rank: rank on this machine (the GPU index).
        device: the device this process trains on.
        owns_group: this run created the process group (and destroys it at the end).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that prints and writes)."""
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """``values`` summed over the processes (float64; unchanged in one process)."""
        if self.world == 1:
            return list(values)
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        td.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def same(self, value: int) -> bool:
        """Whether every process holds the same ``value``."""
        if self.world == 1:
            return True
        import torch.distributed as td

        lo = torch.tensor([value], dtype=torch.int64, device=self._comm_device())
        hi = lo.clone()
        td.all_reduce(lo, op=td.ReduceOp.MIN)
        td.all_reduce(hi, op=td.ReduceOp.MAX)
        return bool(lo.item() == hi.item())

    def average_buffers(self, model: nn.Module) -> None:
        """BatchNorm running statistics averaged over the processes (each recomputed them on its own shard)."""
        if self.world == 1:
            return
        import torch.distributed as td

        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                for buf in (m.running_mean, m.running_var):
                    assert buf is not None
                    td.all_reduce(buf)
                    buf.div_(self.world)

    def max_difference(self, model: nn.Module) -> float:
        """The largest difference of any weight or buffer between processes (0.0 when identical)."""
        if self.world == 1:
            return 0.0
        import torch.distributed as td

        worst = 0.0
        for t in model.state_dict().values():
            if not t.is_floating_point():
                t = t.double()
            hi, lo = t.detach().clone(), t.detach().clone()
            td.all_reduce(hi, op=td.ReduceOp.MAX)
            td.all_reduce(lo, op=td.ReduceOp.MIN)
            if hi.numel():
                worst = max(worst, float((hi - lo).abs().max()))
        return worst

    def barrier(self) -> None:
        """Waits for every process (nothing in one process)."""
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")  # NCCL needs CUDA tensors

    def close(self) -> None:
        """Leaves the process group when this run created it."""
        if self.owns_group:
            import torch.distributed as td

            td.destroy_process_group()
            self.owns_group = False
            global _LEFT_GROUP
            _LEFT_GROUP = self.world > 1


def end_process(code: int) -> None:
    """Ends this process at once with exit status ``code`` when it trained among several torchrun processes (after
    :meth:`Dist.close`); otherwise returns and the caller exits as usual.

    Call it last, when every file is written: it flushes stdout, stderr and logging, then leaves with
    :func:`os._exit`, skipping the interpreter's teardown, whose destruction of the communication threads torch
    leaves running aborts about 1 run in 20 (see ``_LEFT_GROUP``). ``designspace train`` under torchrun does this;
    a script that calls :func:`designspace.train.train` under torchrun should end with it too.
    """
    if not _LEFT_GROUP:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def torchrun_world() -> int | None:
    """``WORLD_SIZE`` when this process was started by torchrun (or another launcher that sets it), else ``None``."""
    text = os.environ.get("WORLD_SIZE")
    if text is None or "RANK" not in os.environ:
        return None
    try:
        return int(text)
    except ValueError:
        raise DesignspaceError(f"WORLD_SIZE={text[:20]!r} in the environment is not a number (fix: start with "
                               "torchrun --nproc_per_node N, or unset WORLD_SIZE)") from None


def setup(device: str, nproc: int | None) -> Dist:
    """Joins the training processes torchrun started (a no-op in a plain process) and picks this one's device.

    Args:
        device: ``"cpu"`` or ``"cuda"`` (under torchrun each process takes GPU ``LOCAL_RANK``).
        nproc: the process count the user expects (``--nproc``), checked against torchrun's; ``None``: any.

    Raises:
        DesignspaceError: ``--nproc`` above 1 without torchrun, or unlike torchrun's count; ``cuda`` without a GPU
            or with fewer GPUs than processes on this machine.
    """
    world = torchrun_world()
    if nproc is not None and nproc < 1:
        raise DesignspaceError(f"--nproc must be at least 1, got {nproc} (fix: --nproc 1)")
    if world is None and nproc not in (None, 1):
        raise DesignspaceError(f"--nproc {nproc}: designspace train does not start processes, torchrun does (fix: "
                               f"torchrun --standalone --nproc_per_node {nproc} -m designspace train ... without "
                               "--nproc)")
    if world is not None and nproc is not None and nproc != world:
        raise DesignspaceError(f"--nproc {nproc}, but torchrun started {world} processes (fix: the same number "
                               "in --nproc_per_node and --nproc, or leave --nproc out)")
    if device == "cuda" and not torch.cuda.is_available():
        raise DesignspaceError("--device cuda, but torch sees no GPU (fix: --device cpu)")
    if world is None or world == 1:
        return Dist(device=torch.device(device))
    import torch.distributed as td

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        if local >= torch.cuda.device_count():
            raise DesignspaceError(f"process {rank} is local rank {local}, but torch sees {torch.cuda.device_count()}"
                                   " GPUs here (fix: --nproc_per_node at most the GPU count)")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    owns = not td.is_initialized()
    if owns:  # NCCL bound to this process's GPU from the start (barriers then know which device to use)
        if device == "cuda":
            td.init_process_group("nccl", device_id=dev)
        else:
            td.init_process_group("gloo")
    return Dist(td.get_rank(), td.get_world_size(), local, dev, owns)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX: oneDNN's test); emulated bf16 is slower
    than float32, so ``--amp`` is refused without it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast type of ``--amp`` on ``device``: bfloat16 where supported (no loss scaling needed), else
    float16 on a GPU (with a gradient scaler).

    Raises:
        DesignspaceError: a CPU without native bfloat16.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if not cpu_has_bf16():
        raise DesignspaceError("--amp on this CPU: it has no native bfloat16 (AVX-512 BF16 or AMX), so mixed "
                               "precision would run slower than float32 (fix: leave --amp out, or train on a GPU)")
    return torch.bfloat16


def default_workers(device: torch.device, local_world: int) -> int:
    """Data-loading worker processes per training process when ``--workers`` is not given.

    Decoding and augmenting with Pillow costs a few milliseconds an image. A GPU outruns one process at that,
    so each training process gets the CPUs it can call its own (this machine's share per local process, or per
    GPU outside torchrun, where search workers run one per GPU; less one for itself, at most 8). On a CPU the
    training itself uses those cores, so workers only pay where cores are plentiful: a quarter of the share, at
    most 4, and none below 4 cores (the loading then runs in the training process).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if device.type == "cuda" and "LOCAL_WORLD_SIZE" not in os.environ:
        local_world = max(local_world, torch.cuda.device_count())  # a process per GPU may run beside this one
    share = max(1, cpus // max(1, local_world))
    if device.type == "cuda":
        return max(0, min(8, share - 1))
    return min(4, share // 4)
