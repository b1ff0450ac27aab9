"""Training an Arch on an ImageFolder dataset: ``designspace train`` (see :mod:`designspace.train.loop`)."""

from designspace.train.checkpoint import CheckpointError
from designspace.train.data import DataError, ImageFolder, Split, scan
from designspace.train.loop import TrainConfig, TrainReport, lr_at, train

__all__ = ["CheckpointError", "DataError", "ImageFolder", "Split", "TrainConfig", "TrainReport", "lr_at", "scan",
           "train"]
