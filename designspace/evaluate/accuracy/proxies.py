"""Training-free accuracy proxies, computed on a freshly initialized network (seeded).

* ``params``, ``macs``: log10 of the parameter count and of the MACs; the baselines every proxy must beat.
* ``synflow`` (Tanaka et al., 2020; as a NAS proxy, Abdelfattah et al., 2021): data-free. Weights are
  replaced by their absolute values, BatchNorm layers are bypassed (identity), the network runs in float64
  on an all-ones input, and the score is ``sum |theta * dR/dtheta|`` over conv and linear weights with
  ``R`` the sum of the logits. Reported as log10.
* ``naswot`` (Mellor et al., 2021): for a batch of images, every activation's *input* sign gives a binary
  code (pre-activation signs, so GELU, SiLU and Hardswish blocks count as ReLU ones do); ``K[i, j]`` is
  the number of units on which images i and j agree; the score is ``log |K|`` (``K`` scaled by the number
  of units, plus a 1e-9 ridge so identical codes give a finite score).
* ``zico`` (Li et al., 2023): gradient statistics. Cross-entropy gradients of two batches (images with
  seeded random labels, as no labelled data is shipped); per conv/linear layer
  ``log(sum |mean g| / std g)`` over its weights, summed over layers.
* ``meco`` (Jiang et al., 2023): label-free, one image. For the output of every component (stem,
  downsampling layers, blocks), the minimum eigenvalue of the Pearson correlation between its channels;
  summed.

A proxy *collapses* where its score is undefined for a network rather than low: SynFlow when no weight gets any
saliency or the float64 product overflows, NASWOT when the network has no activation to code or its kernel
matrix is not positive definite, ZiCo when no layer's gradient varies between the two batches, and any proxy
whose value is not finite. The proxy functions raise :class:`ProxyCollapsed` (a
:class:`~designspace.exceptions.DesignspaceError` naming the proxy and the reason); :func:`compute_proxies`
re-raises it, or with ``on_collapse="record"`` stores NaN and the reason in :attr:`ProxyScores.collapsed`. No
placeholder number stands in for an undefined score.

Inputs are real photographs shipped inside scikit-image (its sample images), cut into seeded random
crops, resized to the Arch's resolution and normalized with the ImageNet mean and standard deviation;
nothing is downloaded. The same seed gives the same inputs, weights and scores.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from designspace.arch import Arch
from designspace.exceptions import DesignspaceError
from designspace.network import Network, NetworkStage

__all__ = ["PROXIES", "ProxyCollapsed", "ProxyScores", "compute_proxies", "meco", "naswot", "proxy_images",
           "synflow", "synflow_score", "zico"]

PROXIES = ("params", "macs", "synflow", "naswot", "zico", "meco")
_ACTS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish)
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# photographs shipped in scikit-image's wheel (no download at run time); grey ones are repeated to RGB
_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "stereo_motorcycle", "camera", "coins", "grass", "brick")


class ProxyCollapsed(DesignspaceError):
    """A proxy's score is undefined for this network (see the module docstring), not merely low.

    Attributes:
        proxy: the proxy's name.
        reason: why, in one line.
        network: the network's name or fingerprint, ``""`` where unknown.
    """

    def __init__(self, proxy: str, reason: str, network: str = "") -> None:
        self.proxy, self.reason, self.network = proxy, reason, network
        on = f" on {network}" if network else ""
        super().__init__(f"proxy {proxy} collapsed{on}: {reason} (fix: rank this network with another proxy or "
                         "estimate; a collapsed proxy has no value to compare)")


@dataclass(frozen=True)
class ProxyScores:
    """Proxy values of one Arch (higher means more accurate, for every proxy).

    Attributes:
        fingerprint: the Arch's fingerprint.
        values: proxy name -> score; NaN for a collapsed proxy.
        seconds: proxy name -> wall time of its computation.
        seed: the seed of inputs and weights.
        batch: images per batch (NASWOT; ZiCo uses two batches of half this size).
        collapsed: proxy name -> why it collapsed (only with ``on_collapse="record"``; empty otherwise).
    """

    fingerprint: str
    values: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    batch: int = 16
    collapsed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; a collapsed proxy's value is ``None`` (JSON has no NaN) and ``collapsed`` says why."""
        values = {k: (None if k in self.collapsed else v) for k, v in self.values.items()}
        return {"fingerprint": self.fingerprint, "values": values, "seconds": self.seconds, "seed": self.seed,
                "batch": self.batch, "collapsed": self.collapsed}


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
    try:
        import skimage.data
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise DesignspaceError("proxies need scikit-image's sample images (fix: pip install 'designspace[proxies]')") \
            from err
    out = []
    for name in _IMAGES:
        img = getattr(skimage.data, name)()
        img = np.asarray(img[0] if isinstance(img, tuple) else img)  # stereo_motorcycle: (left, right, disparity)
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(np.ascontiguousarray(img[..., :3]))
    return tuple(out)


def proxy_images(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    """``n`` normalized crops (``(n, 3, R, R)``, float32) of scikit-image's photographs, seeded."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    crops = []
    for _ in range(n):
        img = photos[rng.integers(len(photos))]
        h, w, _ = img.shape
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = torch.from_numpy(img[y:y + side, x:x + side]).permute(2, 0, 1).float().unsqueeze(0) / 255.0
        crop = F.interpolate(crop, size=(resolution, resolution), mode="bilinear", align_corners=False)
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    return (torch.cat(crops) - _MEAN) / _STD


def _build(arch: Arch, seed: int) -> Network:
    torch.manual_seed(seed)
    return Network(arch)


def _weights(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _bypass_batchnorm(module: nn.Module) -> None:
    """Replaces every BatchNorm layer with the identity."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _bypass_batchnorm(child)


def synflow(arch: Arch, seed: int = 0) -> float:
    """log10 of the SynFlow score of ``arch`` with fresh weights seeded by ``seed`` (see the module docstring).

    Raises:
        ProxyCollapsed: as :func:`synflow_score`.
    """
    return _synflow(_build(arch, seed), (1, arch.in_chans, arch.resolution, arch.resolution))


def synflow_score(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """log10 of ``sum |theta * dR/dtheta|`` over the conv and linear weights of a copy of ``model`` with absolute
    weights, BatchNorm bypassed, in float64, where ``R`` is the sum of the outputs for an all-ones input of
    ``input_shape`` (``model`` itself is left unchanged).

    Raises:
        ProxyCollapsed: the sum is 0 (no path carries any saliency) or overflows float64.
    """
    return _synflow(copy.deepcopy(model), input_shape)


def _synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """:func:`synflow_score` on ``model`` itself, which it changes (a fresh network needs no copy)."""
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    _bypass_batchnorm(model)  # as SynFlow prescribes
    model.zero_grad()
    model(torch.ones(input_shape, dtype=torch.float64)).sum().backward()
    total = sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in _weights(model)
                if m.weight.grad is not None)
    if not math.isfinite(total):
        raise ProxyCollapsed("synflow", f"the saliency sum overflows float64 ({total})")
    if total <= 0:
        raise ProxyCollapsed("synflow", "no conv or linear weight gets any saliency (every path's product is 0)")
    return math.log10(total)


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """NASWOT's natural-log ``log |K|`` from pre-activation sign codes of ``images`` (see the module docstring).

    Raises:
        ProxyCollapsed: ``model`` has no ReLU, ReLU6, GELU, SiLU or Hardswish module, or ``K`` is not positive
            definite.
    """
    n = images.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)
    units = [0]

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes = (inputs[0].detach().reshape(n, -1) > 0).to(torch.float32)
        k.add_((codes @ codes.T + (1 - codes) @ (1 - codes).T).double())
        units[0] += codes.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, _ACTS)]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for h in handles:
            h.remove()
    if units[0] == 0:
        raise ProxyCollapsed("naswot", "the network has no ReLU, ReLU6, GELU, SiLU or Hardswish activation to code")
    k = k / units[0] + 1e-9 * torch.eye(n, dtype=torch.float64)
    sign, logdet = torch.linalg.slogdet(k)
    if float(sign) <= 0 or not math.isfinite(float(logdet)):
        raise ProxyCollapsed("naswot", f"the kernel matrix is not positive definite (sign {float(sign):g})")
    return float(logdet)


def zico(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """ZiCo (natural log, summed over layers) over ``images`` and ``labels`` (taken modulo ``num_classes``) split
    into two batches (see the module docstring). As in the authors' code, a weight whose gradient does not vary
    between the batches is left out, and so is a layer with no varying weight.

    Raises:
        DesignspaceError: fewer than two images.
        ProxyCollapsed: no layer's gradient varies between the two batches.
    """
    if images.shape[0] < 2:
        raise DesignspaceError(f"ZiCo needs two batches, got {images.shape[0]} image(s) (fix: a batch of at least 2)")
    model.train()
    layers = _weights(model)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for batch, target in zip(images.chunk(2), labels.chunk(2), strict=True):
        model.zero_grad()
        F.cross_entropy(model(batch), target % num_classes).backward()
        for i, m in enumerate(layers):
            if m.weight.grad is not None:
                grads[i].append(m.weight.grad.detach().reshape(-1).clone())
    score, layers_used = 0.0, 0
    for g in grads:
        if len(g) < 2:
            continue
        stacked = torch.stack(g)
        std, mean_abs = stacked.std(dim=0), stacked.abs().mean(dim=0)
        keep = std > 0
        total = float((mean_abs[keep] / std[keep]).sum())
        if total > 0:
            score += math.log(total)
            layers_used += 1
    model.eval()
    if layers_used == 0:  # a sum over no layer is not a score of 0
        raise ProxyCollapsed("zico", "no conv or linear layer's gradient varies between the two batches")
    return score


def meco(model: Network, image: torch.Tensor) -> float:
    """MeCo over the outputs of every component (see the module docstring)."""
    components: list[nn.Module] = [model.stem]
    for stage in model.stages:
        assert isinstance(stage, NetworkStage)
        if stage.downsample is not None:
            components.append(stage.downsample)
        components.extend(stage.blocks)
    layouts = _layouts(model)
    total = [0.0]

    def hook_for(layout: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            fea = output[0].detach().double()
            fea = fea.reshape(fea.shape[0], -1) if layout == "nchw" else fea.reshape(-1, fea.shape[-1]).T
            corr = torch.nan_to_num(torch.corrcoef(fea), nan=0.0, posinf=0.0, neginf=0.0)
            total[0] += float(torch.linalg.eigvalsh(corr)[0])

        return hook

    handles = [m.register_forward_hook(hook_for(lay)) for m, lay in zip(components, layouts, strict=True)]
    try:
        with torch.no_grad():
            model.eval()(image[:1])
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _layouts(model: Network) -> list[str]:
    from designspace.plan import plan

    return [p.component.layouts(p.layer.kwargs())[1] for p in plan(model.arch)[:-1]]


def compute_proxies(arch: Arch, names: tuple[str, ...] = PROXIES, *, seed: int = 0, batch: int = 16,
                    on_collapse: Literal["raise", "record"] = "raise") -> ProxyScores:
    """Computes the named proxies of ``arch`` (fresh seeded weights, seeded inputs).

    Args:
        arch: the Arch.
        names: which proxies (:data:`PROXIES`).
        seed: seed of the weights, images and labels.
        batch: images for NASWOT (at least 2); ZiCo uses the same images as two batches.
        on_collapse: ``"raise"``: a collapsed proxy raises :class:`ProxyCollapsed`; ``"record"``: its value is
            NaN and :attr:`ProxyScores.collapsed` says why, the other proxies are still computed.

    Raises:
        DesignspaceError: an unknown proxy name, or a batch below 2.
        ProxyCollapsed: a proxy collapsed, with ``on_collapse="raise"``.
    """
    from designspace.evaluate.counts.analytic import count

    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise DesignspaceError(f"unknown proxy {unknown[0]!r} (fix: use {', '.join(PROXIES)})")
    if batch < 2:  # NASWOT compares images, ZiCo needs two batches
        raise DesignspaceError(f"proxy batch must be at least 2 images, got {batch} (fix: a batch of 2 or more)")
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}
    collapsed: dict[str, str] = {}
    counts = count(arch)
    images = labels = None
    for name in names:
        start = time.perf_counter()
        try:
            if name == "params":
                value = math.log10(counts.params)
            elif name == "macs":
                value = math.log10(counts.macs)
            elif name == "synflow":
                value = synflow(arch, seed)
            else:
                if images is None:
                    images = proxy_images(batch, arch.resolution, seed)
                    labels = torch.randint(0, 1 << 30, (batch,), generator=torch.Generator().manual_seed(seed))
                model = _build(arch, seed)  # each proxy gets the same fresh weights
                if name == "naswot":
                    value = naswot(model, images)
                elif name == "zico":
                    value = zico(model, images, labels, arch.num_classes)  # type: ignore[arg-type]
                else:
                    value = meco(model, images)
            if not math.isfinite(value):
                raise ProxyCollapsed(name, f"the score is not finite ({value})")
        except ProxyCollapsed as err:
            where = arch.name or arch.fingerprint
            if on_collapse == "raise":
                raise ProxyCollapsed(err.proxy, err.reason, where) from None
            value, collapsed[name] = math.nan, err.reason
        values[name] = value
        seconds[name] = time.perf_counter() - start
    return ProxyScores(arch.fingerprint, values, seconds, seed, batch, collapsed)

