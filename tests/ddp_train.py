"""Run by tests/test_train.py under torchrun: trains the tiny Arch with :func:`designspace.train.train` in each
process and saves that process's final weights as ``OUT/rank<R>.pt``, so the test can compare the processes.

Usage: ``torchrun --standalone --nproc_per_node N ddp_train.py ARCH DATA OUT EPOCHS``.
"""

from __future__ import annotations

import os
import sys

import torch

from designspace.train import TrainConfig, train
from designspace.train.distributed import end_process


def _say(text: str) -> None:
    # one write with its newline: torchrun's workers run unbuffered, where print() writes the text and the newline
    # apart, and the two processes' lines then interleave mid-line on the shared pipe (seen once in a full run)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    """Trains, prints rank 0's lines prefixed with the rank, saves this process's weights."""
    arch, data, out, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rank = int(os.environ["RANK"])
    report = train(TrainConfig(arch=arch, data=data, out=out, epochs=epochs, batch_size=8, lr=1e-2, resolution=32,
                               progress=False, seed=0), echo=lambda line: _say(f"[rank {rank}] {line}"))
    assert report.model is not None
    torch.save(report.model.state_dict(), f"{out}/rank{rank}.pt")
    _say(f"[rank {rank}] processes {report.processes} epochs {report.epochs}")
    end_process(0)  # torch leaves the group's threads running; their teardown at exit can abort (see end_process)


if __name__ == "__main__":
    main()
