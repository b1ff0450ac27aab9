"""A small procedural ImageFolder for training tests (test code, not API).

Ten classes of textures told apart by their structure, not their colour: every image gets random colours,
frequency, phase and noise, so a model has to learn the patterns. All patterns are left-right symmetric as
classes (a flipped image stays in its class), since training flips images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("hstripes", "vstripes", "checker", "dots", "rings", "crosshatch", "sectors", "blobs", "grain", "frame")


def texture(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size x size x 3`` uint8 image of class ``name``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    f = rng.uniform(3, 6)
    ph = rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(0.35, 0.65, 2)
    r = np.hypot(x - cx, y - cy)
    if name == "hstripes":
        v = np.sin(2 * np.pi * f * y + ph)
    elif name == "vstripes":
        v = np.sin(2 * np.pi * f * x + ph)
    elif name == "checker":
        v = np.sign(np.sin(2 * np.pi * f * x + ph) * np.sin(2 * np.pi * f * y + ph))
    elif name == "dots":
        v = (np.hypot((x * f + ph) % 1 - 0.5, (y * f) % 1 - 0.5) < 0.25) * 2.0 - 1
    elif name == "rings":
        v = np.sin(2 * np.pi * f * 1.5 * r + ph)
    elif name == "crosshatch":
        v = np.maximum(np.sin(2 * np.pi * f * (x + y) + ph), np.sin(2 * np.pi * f * (x - y) + ph))
    elif name == "sectors":
        v = np.sign(np.sin(round(f) * np.arctan2(y - cy, x - cx) + ph))
    elif name == "blobs":
        coarse = rng.normal(size=(4, 4))
        v = np.kron(coarse, np.ones((size // 4 + 1, size // 4 + 1)))[:size, :size]
        v = v / (np.abs(v).max() + 1e-6)
    elif name == "grain":
        v = rng.choice([-1.0, 1.0], size=(size, size))
    elif name == "frame":
        d = np.maximum(np.abs(x - cx), np.abs(y - cy))
        v = ((d > 0.22) & (d < 0.32)) * 2.0 - 1
    else:
        raise ValueError(name)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (v[..., None] + 1) / 2
    img = a * t + b * (1 - t) + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_imagefolder(root: Path, per_class: int = 60, size: int = 48, seed: int = 0,
                     classes: tuple[str, ...] = CLASSES) -> Path:
    """Writes ``root/<class>/<i>.png`` and returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(texture(name, size, rng)).save(root / name / f"{i:04d}.png")
    return root
