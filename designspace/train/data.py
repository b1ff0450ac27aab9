"""ImageFolder datasets read with Pillow, and the standard ImageNet augmentation on torch alone.

Layout: ``ROOT/<class>/<image>`` (split into train and validation per class, seeded), or ``ROOT/train/<class>/``
and ``ROOT/val/<class>/`` (used as given). Classes are the sorted folder names. Images Pillow cannot read are
skipped with a warning; a class with no readable image is an error (it would make the labels lie).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from designspace.exceptions import DesignspaceError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DataError", "ImageFolder", "Split", "image_side", "scan"]

log = logging.getLogger("designspace")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class DataError(DesignspaceError):
    """The dataset folder cannot be used (missing, no classes, an empty class)."""


@dataclass(frozen=True)
class Split:
    """A dataset split into train and validation samples.

    Attributes:
        classes: class names (label = index).
        train: (path, label) pairs.
        val: (path, label) pairs.
        skipped: unreadable files left out, with the reason.
    """

    classes: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]
    val: tuple[tuple[Path, int], ...]
    skipped: tuple[tuple[Path, str], ...]


def _readable(path: Path) -> str:
    """'' if Pillow can decode ``path``, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()  # structure and checksums, no decoding
        with Image.open(path) as img:
            img.load()  # truncated files pass verify() but fail here
    except Exception as err:  # Pillow raises many types for broken files
        return f"{type(err).__name__}: {err}"
    return ""


def _class_images(folder: Path, skipped: list[tuple[Path, str]]) -> dict[str, list[Path]]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    out: dict[str, list[Path]] = {}
    for c in classes:
        images = []
        for f in sorted(c.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in EXTENSIONS:
                continue
            reason = _readable(f)
            if reason:
                log.warning("skipping %s: not a readable image (%s)", f, reason)
                skipped.append((f, reason))
            else:
                images.append(f)
        out[c.name] = images
    return out


def _check(folder: Path, images: dict[str, list[Path]]) -> None:
    if not images:
        raise DataError(f"{folder}: no class folders (fix: one sub-folder of images per class, e.g. "
                        f"{folder}/cat/*.jpg, {folder}/dog/*.jpg)")
    if len(images) < 2:
        raise DataError(f"{folder}: only one class ({next(iter(images))}) (fix: at least two class folders)")
    empty = [c for c, files in images.items() if not files]
    if empty:
        raise DataError(f"{folder}: class {empty[0]!r} has no readable images"
                        + (f" (and {len(empty) - 1} more empty)" if len(empty) > 1 else "")
                        + f" (fix: add images to {folder / empty[0]} or remove the folder)")


def scan(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Finds the classes and images under ``root`` and splits them (see the module docstring).

    Args:
        root: the dataset folder.
        val_fraction: share of each class held out for validation when ``root`` has no ``train``/``val``
            folders (at least one image per class each side).
        seed: seed of that split.

    Raises:
        DataError: a missing folder, no classes, an empty class, classes that differ between train and val.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder (fix: --data DIR with one sub-folder of images per class)")
    skipped: list[tuple[Path, str]] = []
    if (folder / "train").is_dir() and (folder / "val").is_dir():
        train_images = _class_images(folder / "train", skipped)
        val_images = _class_images(folder / "val", skipped)
        _check(folder / "train", train_images)
        _check(folder / "val", val_images)
        if set(train_images) != set(val_images):
            diff = sorted(set(train_images) ^ set(val_images))
            raise DataError(f"{folder}: train and val have different classes ({', '.join(diff[:5])}) (fix: the "
                            "same class folders on both sides)")
        classes = tuple(sorted(train_images))
        train = [(p, i) for i, c in enumerate(classes) for p in train_images[c]]
        val = [(p, i) for i, c in enumerate(classes) for p in val_images[c]]
    else:
        if not 0 < val_fraction < 1:
            raise DataError(f"the validation fraction must be in (0, 1), got {val_fraction}")
        images = _class_images(folder, skipped)
        _check(folder, images)
        few = [c for c, files in images.items() if len(files) < 2]
        if few:
            raise DataError(f"{folder}: class {few[0]!r} has one image, too few to split into train and val "
                            "(fix: at least two images per class, or train/ and val/ folders)")
        classes = tuple(sorted(images))
        rng = random.Random(seed)
        train, val = [], []
        for i, c in enumerate(classes):
            files = list(images[c])
            rng.shuffle(files)
            n_val = min(len(files) - 1, max(1, round(len(files) * val_fraction)))
            val += [(p, i) for p in sorted(files[:n_val])]
            train += [(p, i) for p in sorted(files[n_val:])]
    return Split(classes, tuple(train), tuple(val), tuple(skipped))


def image_side(samples: tuple[tuple[Path, int], ...], limit: int = 64) -> int | None:
    """The median short side (pixels) of up to ``limit`` of ``samples``' images, evenly spaced (headers only,
    nothing decoded); ``None`` when none can be opened."""
    from PIL import Image

    sides = []
    step = max(1, len(samples) // limit)
    for path, _ in samples[::step][:limit]:
        try:
            with Image.open(path) as img:
                sides.append(min(img.size))
        except Exception:
            continue
    return sorted(sides)[len(sides) // 2] if sides else None


def _to_tensor(img: object) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float32) / 255.0  # H x W x 3
    t = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (t - mean) / std


class ImageFolder(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Samples as normalized ``3 x resolution x resolution`` float tensors (ImageNet mean and std).

    Training: RandomResizedCrop (area ``crop_scale``, aspect 3/4-4/3, bilinear) and a horizontal flip with
    probability ``hflip``. Evaluation: resize the short side to ``resolution / 0.875``, centre crop.
    An image that fails to load at training time (changed on disk) is replaced by the next one, with a warning.
    """

    def __init__(self, samples: tuple[tuple[Path, int], ...], resolution: int, *, train: bool,
                 crop_scale: tuple[float, float] = (0.08, 1.0), hflip: float = 0.5, seed: int = 0) -> None:
        self.samples = samples
        self.resolution = resolution
        self.train = train
        self.crop_scale = crop_scale
        self.hflip = hflip
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def _crop_box(self, rng: random.Random, w: int, h: int) -> tuple[int, int, int, int]:
        area = w * h
        for _ in range(10):  # torchvision's RandomResizedCrop rule
            target = area * rng.uniform(*self.crop_scale)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < cw <= w and 0 < ch <= h:
                x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
                return x, y, x + cw, y + ch
        side = min(w, h)  # fall back to the centre square
        x, y = (w - side) // 2, (h - side) // 2
        return x, y, x + side, y + side

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                with Image.open(path) as raw:
                    img = raw.convert("RGB")
                break
            except Exception as err:  # a file changed since the scan
                log.warning("skipping %s at load time: %s", path, err)
        else:
            raise DataError("no image of the dataset could be loaded")
        r = self.resolution
        if self.train:
            # seeded per (epoch, index): runs are reproducible, worker processes included
            rng = random.Random(hash((self.seed, self.epoch, index)))
            img = img.resize((r, r), Image.Resampling.BILINEAR, box=self._crop_box(rng, *img.size))
            if rng.random() < self.hflip:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            short = round(r / 0.875)
            w, h = img.size
            scale = short / min(w, h)
            img = img.resize((max(r, round(w * scale)), max(r, round(h * scale))), Image.Resampling.BILINEAR)
            w, h = img.size
            x, y = (w - r) // 2, (h - r) // 2
            img = img.crop((x, y, x + r, y + r))
        return _to_tensor(img), label
