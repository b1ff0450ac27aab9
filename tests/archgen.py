"""Random hybrid Archs mixing every registered family, for property tests (test code, not API).

Values are drawn from small per-parameter menus; combinations the Arch rejects (heads not dividing
a width, ...) are redrawn, so every returned Arch is valid. Draws with global attention over
thousands of tokens (over MAX_MATMUL_MACS in one block) are redrawn too: tracing one of them takes
tens of GiB and minutes (a 72x72-token iRMB needed 12 GiB), and they are not what the counting
tests are about.
"""

from __future__ import annotations

import random
from typing import Any

from designspace import Arch, DocumentError, Layer, Stage, count
from designspace.blocks import components

# Candidate values per (component, parameter); parameters not listed keep their default.
MENU: dict[str, dict[str, list[Any]]] = {
    "mbconv": {"exp_ratio": [1.0, 3.0, 4.0, 6.0], "kernel_size": [3, 5, 7], "se_ratio": [0.0, 0.25],
               "act": ["relu6", "silu", "hardswish"]},
    "efficientmod": {"exp_ratio": [1, 2, 4, 6], "kernel_size": [3, 5, 7], "layer_scale": [0.0, 1e-4]},
    "irmb": {"exp_ratio": [1.0, 2.0, 2.5, 4.0], "kernel_size": [3, 5], "attn": [False, True],
             "dim_head": [8, 16, 20, 32], "window_size": [0, 4, 7], "norm": ["auto", "bn", "ln"],
             "se_ratio": [0.0, 0.25], "attn_pre": [True, False]},
    "iformer_conv": {"exp_ratio": [2.0, 3.0, 4.0], "kernel_size": [3, 5, 7], "layer_scale": [0.0, 1e-6]},
    "shma": {"qk_reduction": [1, 2, 4], "attn_ratio": [1.0, 2.0], "ffn_ratio": [2.0, 3.0], "layer_scale": [0.0, 1e-6]},
    "sam": {"heads": [1, 2, 3, 4], "expand_ratio": [1, 2], "mlp_ratio": [2.0, 4.0], "ffn": ["convffn", "mlp"],
            "layer_scale": [0.0, 1e-4]},
    "msa": {"num_heads": [1, 2, 4, 8], "head_dim": [0, 0, 16, 32], "v_local_conv": [True, False],
            "ffn": ["convffn", "mlp"], "mlp_ratio": [2.0, 4.0], "qkv_bias": [True, False]},
    "conv_ln": {"pre_norm": [False, True], "kernel_size": [3, 5]},
    "conv_bn": {"kernel_size": [3, 5]},
    "mbv2_head": {"width": [0, 256, 640]},
    "emo_stem": {"se_ratio": [0.0, 1.0]},
}
WIDTHS = [16, 24, 32, 40, 48, 56, 64, 80, 96, 120, 128, 160, 176]
RESOLUTIONS = [160, 176, 192, 208, 224, 256, 288]
#: Largest attention matrix-product MACs allowed in one block (the zoo's largest is 0.02 G, SMT-T's).
MAX_MATMUL_MACS = 1e9


def _layer(rng: random.Random, name: str) -> Layer:
    return Layer(name, {k: rng.choice(v) for k, v in MENU.get(name, {}).items()})


def _block(rng: random.Random, stride_capable: bool) -> Layer:
    names = [c.name for c in components("block") if not stride_capable or 2 in c.strides]
    return _layer(rng, rng.choice(names))


def random_arch(rng: random.Random, max_tries: int = 200) -> Arch:
    """A valid random Arch: 3-4 stages, hybrid blocks, a random stem/downsampling/head, input 160-288."""
    for _ in range(max_tries):
        try:
            arch = _draw(rng)
        except DocumentError:
            continue
        if max(dict(c.macs_by).get("matmul", 0) for c in count(arch).components) <= MAX_MATMUL_MACS:
            return arch
    raise RuntimeError("no valid Arch drawn")


def _draw(rng: random.Random) -> Arch:
    stem = _layer(rng, rng.choice([c.name for c in components("stem")]))
    n_stages = rng.choice([3, 4])
    widths = sorted(rng.sample(WIDTHS, n_stages))
    stages = []
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        ds_choice = rng.choice([None, "conv_ln", "conv_bn"])
        needs_ds = stride == 2 or (i > 0 and widths[i - 1] != width) or (i == 0 and rng.random() < 0.5)
        downsample = _layer(rng, ds_choice) if ds_choice and needs_ds else None
        depth = rng.choice([1, 2, 3])
        blocks = [_block(rng, stride_capable=downsample is None and j == 0) for j in range(depth)]
        stages.append(Stage(width=width, stride=stride, downsample=downsample, blocks=tuple(blocks)))
    head = _layer(rng, rng.choice([c.name for c in components("head")]))
    return Arch(stem=stem, stages=tuple(stages), head=head, stem_width=rng.choice([0, 16, 24]),
                resolution=rng.choice(RESOLUTIONS), num_classes=rng.choice([10, 1000]),
                drop_path_rate=rng.choice([0.0, 0.1]), name=f"random_{rng.random():.6f}")


def families(arch: Arch) -> set[str]:
    """Block types an Arch uses."""
    return {b.type for _, _, b in arch.blocks()}
