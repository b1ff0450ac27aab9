"""Per-component cost features of a network as a device would run it (fp16, batch 1, eval mode): the network runs on
PyTorch's ``meta`` device under a dispatch mode that charges each ATen op to the component (as
:func:`designspace.plan.plan` places them) whose forward is running, and layout permutes between NCHW and NHWC
components to the component before them. What each feature counts: docs/devices.md, 'The cost model'.

Units (:data:`FEATURES`; a network's totals are of order 0.1-100): GMACs (``conv_gmacs``, ``pw_gmacs``,
``dw_gmacs``, ``attn_gmacs``), fp16 MB (``act_mb``, ``weight_mb``, ``layout_mb``), millions of elements
(``norm_melems``, ``softmax_melems``, ``softmax_spill_melems``: of matrices over :data:`ONCHIP_MB`), counts
(``layout_ops``, ``heads``, ``ops``) and ``const``, 1 a network. A BatchNorm right after a convolution folds into it.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from designspace.arch import Arch, Layer
from designspace.blocks import Site

if TYPE_CHECKING:
    from designspace.plan import Placement

__all__ = ["FEATURES", "ONCHIP_MB", "component_features", "network_features", "placement_features",
           "traced_component_features"]

FEATURES = ("conv_gmacs", "pw_gmacs", "dw_gmacs", "attn_gmacs", "act_mb", "weight_mb", "layout_mb", "layout_ops",
            "norm_melems", "softmax_melems", "heads", "softmax_spill_melems", "ops", "const")

#: The on-chip memory an attention matrix must fit in to stay on the accelerator, MB (fp16); any value between
#: 0.17 and 2.1 MB splits the published points alike (docs/devices.md, 'The cost model'): 1 MB (N = 724 square).
ONCHIP_MB = 1.0

_BYTES = 2  # fp16
_VIEWS = {"view", "_unsafe_view", "reshape", "expand", "t", "alias", "unsqueeze", "squeeze", "flatten",
          "detach", "lift_fresh"}  # reshape-like: an op in Core ML, no bytes moved
_MOVES = {"permute", "transpose", "clone", "contiguous", "cat", "repeat", "constant_pad_nd", "select", "slice",
          "split", "unbind", "chunk", "split_with_sizes", "_to_copy", "copy"}
_NOT_OPS = {"empty", "empty_like", "zeros", "ones", "new_empty", "fill", "zero", "lift_fresh_copy"}


def _is_param(t: Any) -> bool:
    """A parameter, or a view of one (a Linear weight's transpose)."""
    import torch

    return isinstance(t, torch.nn.Parameter) or isinstance(getattr(t, "_base", None), torch.nn.Parameter)


def _numel(t: Any) -> int:
    return int(t.numel()) if hasattr(t, "numel") else 0


def _outs(out: Any) -> list[Any]:
    if isinstance(out, (list, tuple)):
        return [o for o in out if hasattr(o, "numel")]
    return [out] if hasattr(out, "numel") else []


class _Recorder:
    """Accumulates features per component name while the dispatch mode runs."""

    def __init__(self) -> None:
        self.current = "network"
        self.by: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FEATURES, 0.0))
        self.conv_outputs: set[int] = set()
        self.keep: list[Any] = []  # keeps conv outputs alive so their ids stay unique

    def add(self, key: str, value: float) -> None:
        self.by[self.current][key] += value

    def record(self, name: str, args: tuple[Any, ...], out: Any) -> None:
        import torch

        params = [a for a in args if _is_param(a)]
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if tensors and len(params) == len(tensors):
            return  # weight preprocessing (a transpose of a Linear weight): folded into constants
        outs = _outs(out)
        written = sum(_numel(o) for o in outs) * _BYTES / 1e6
        if name in _NOT_OPS:
            return
        if name in _VIEWS:
            if name not in ("expand", "t", "alias", "detach", "lift_fresh"):
                self.add("layout_ops", 1)
            return
        if name in _MOVES:
            self.add("layout_ops", 1)
            self.add("layout_mb", 0.0 if name in ("split", "chunk") else written)  # a split is a view: parts read later
            return
        self.add("ops", 1)
        self.add("act_mb", written)
        self.add("weight_mb", sum(_numel(p) for p in params) * _BYTES / 1e6)
        if name == "convolution":
            x, w, groups = args[0], args[1], int(args[8])
            macs = _numel(outs[0]) * (w.shape[1] * w.shape[2] * w.shape[3])
            key = "dw_gmacs" if groups > 1 else ("pw_gmacs" if w.shape[2] * w.shape[3] == 1 else "conv_gmacs")
            self.add(key, macs / 1e9)
            self.conv_outputs.add(id(outs[0]))
            self.keep.append(outs[0])
        elif name in ("addmm", "mm", "bmm", "matmul", "baddbmm"):
            a = args[1] if name in ("addmm", "baddbmm") else args[0]
            macs = _numel(outs[0]) * int(a.shape[-1])
            self.add("pw_gmacs" if params else "attn_gmacs", macs / 1e9)
        elif name in ("native_layer_norm", "native_group_norm", "layer_norm", "group_norm"):
            self.add("norm_melems", _numel(args[0]) / 1e6)
        elif name in ("native_batch_norm", "_native_batch_norm_legit_no_training", "batch_norm"):
            if id(args[0]) in self.conv_outputs:
                self.by[self.current]["ops"] -= 1  # folded into the conv
                self.by[self.current]["act_mb"] -= written
            else:
                self.add("norm_melems", _numel(args[0]) / 1e6)
        elif name in ("_softmax", "_safe_softmax", "softmax"):
            x = outs[0]
            self.add("softmax_melems", _numel(x) / 1e6)
            n = int(x.shape[-1]) * int(x.shape[-2]) if x.dim() >= 2 else 1
            self.add("heads", _numel(x) / max(n, 1))
            if n * _BYTES / 1e6 > ONCHIP_MB:
                self.add("softmax_spill_melems", _numel(x) / 1e6)


def _record(model: Any, x: Any, parts: dict[str, Any], conv_input: bool = False) -> tuple[_Recorder, Any]:
    """(recorder, output) of ``model`` run on meta ``x``, each op charged to the part of ``parts`` (name ->
    submodule) whose forward last began, else to ``"network"``; ``conv_input``: ``x`` is a convolution's output."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    rec = _Recorder()
    if conv_input:
        rec.conv_outputs.add(id(x))
        rec.keep.append(x)

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            rec.record(func.overloadpacket.__name__, tuple(args), out)
            return out

    handles = []
    for name, module in parts.items():
        def pre(_m: Any, _a: Any, name: str = name) -> None:
            rec.current = name

        handles.append(module.register_forward_pre_hook(pre))
    try:
        with torch.no_grad(), Mode():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return rec, out


def traced_component_features(arch: Arch) -> dict[str, dict[str, float]]:
    """The reference for :func:`component_features` (which equals it, ``tests/test_features.py``): one meta-device
    run of the whole network (150-1000 ms), each operation charged to the component running it."""
    import torch

    from designspace.network import Network
    from designspace.plan import plan

    with torch.device("meta"):
        model = Network(arch).eval()
        x = torch.empty(1, arch.in_chans, arch.resolution, arch.resolution)
    names = [p.name for p in plan(arch)]
    rec, _ = _record(model, x, {name: model.get_submodule(name) for name in names})
    out = {name: dict(rec.by[name]) for name in names if name in rec.by}
    out["network"] = {**dict.fromkeys(FEATURES, 0.0), **rec.by.get("network", {}), "const": 1.0}
    return out


# ------------------------------------------------------------------------------------------ composed features
#: The network's permutes between layouts (designspace/network.py inserts them where neighbours differ).
_PERMUTE = {"nhwc": (0, 2, 3, 1), "nchw": (0, 3, 1, 2)}

#: What a component alone returns: its features (or None if it recorded nothing, as a whole-network trace then
#: lists no line for it), and its output's shape, strides and whether a convolution wrote it.
_Alone = tuple[tuple[float, ...] | None, tuple[int, ...], tuple[int, ...], bool]


@functools.lru_cache(maxsize=1 << 15)
def _alone(layer: Layer, site: Site, shape: tuple[int, ...], stride: tuple[int, ...], conv_input: bool) -> _Alone:
    """One component at its site run alone on an input of exactly the shape, strides and provenance it gets in the
    network (all a whole-network trace's charges to it depend on), cached in the process and, once flushed, in the
    evaluation cache (:mod:`designspace.evaluate.devices.feature_cache`)."""
    import torch

    from designspace.blocks import get
    from designspace.evaluate.devices import feature_cache

    k = feature_cache.key(layer, site, shape, stride, conv_input)
    kept = feature_cache.get(k)
    if kept is not None and (kept["features"] is None or set(kept["features"]) == set(FEATURES)):
        f = kept["features"]
        return (None if f is None else tuple(float(f[n]) for n in FEATURES), tuple(kept["shape"]),
                tuple(kept["stride"]), bool(kept["conv_output"]))
    with torch.device("meta"):
        module = get(layer.type).build(site, layer.kwargs(), 0.0).eval()  # drop path is the identity in eval
        x = torch.empty_strided(shape, stride)
    rec, out = _record(module, x, {}, conv_input)
    got = rec.by.get("network")
    feats = None if got is None else tuple(got[n] for n in FEATURES)
    result = (feats, tuple(out.shape), tuple(out.stride()), id(out) in rec.conv_outputs)
    feature_cache.put(k, {"features": None if got is None else dict(got), "shape": list(result[1]),
                          "stride": list(result[2]), "conv_output": result[3]})
    return result


@functools.lru_cache(maxsize=1 << 12)
def _permuted(shape: tuple[int, ...], stride: tuple[int, ...], dims: tuple[int, ...]) -> _Alone:
    """The permute the network inserts before a component of the other layout, as the whole trace records it."""
    import torch

    with torch.device("meta"):
        x = torch.empty_strided(shape, stride)
    rec, out = _record(lambda t: t.permute(*dims), x, {})
    got = rec.by.get("network")
    feats = None if got is None else tuple(got[k] for k in FEATURES)
    return feats, tuple(out.shape), tuple(out.stride()), False


def _composed(arch: Arch) -> dict[str, dict[str, float]]:
    """Per-component features of ``arch`` composed from cached single-component runs."""
    from designspace.plan import plan

    shape: tuple[int, ...] = (1, arch.in_chans, arch.resolution, arch.resolution)
    stride: tuple[int, ...] = (arch.in_chans * arch.resolution ** 2, arch.resolution ** 2, arch.resolution, 1)
    conv_input, layout = False, "nchw"
    lines: dict[str, list[float] | None] = {}
    prev = ""
    for i, p in enumerate(plan(arch)):
        lin, lout = p.component.layouts(p.layer.kwargs())
        if i > 0 and lin != layout:  # the network permutes after the previous component's forward (not before the stem)
            glue, shape, stride, conv_input = _permuted(shape, stride, _PERMUTE[lin])
            if glue is not None:
                base = lines[prev]
                lines[prev] = [a + b for a, b in zip(base, glue, strict=True)] if base is not None else list(glue)
        feats, shape, stride, conv_input = _alone(p.layer, p.site, shape, stride, conv_input)
        lines[p.name] = None if feats is None else list(feats)
        layout, prev = lout, p.name
    out = {name: dict(zip(FEATURES, f, strict=True)) for name, f in lines.items() if f is not None}
    out["network"] = {**dict.fromkeys(FEATURES, 0.0), "const": 1.0}
    return out


def placement_features(p: Placement) -> dict[str, float]:
    """Features of one placed component run alone, as the latency table times it (its own input layout, no
    layout change before it), with ``const`` = 1 for the run's fixed cost. The units are :data:`FEATURES`'."""
    layout, _ = p.component.layouts(p.layer.kwargs())
    (h, w), c = p.site.hw, p.site.in_chs
    if layout == "nchw":
        shape, stride = (1, c, h, w), (c * h * w, h * w, w, 1)
    else:
        shape, stride = (1, h, w, c), (h * w * c, w * c, c, 1)
    feats, *_ = _alone(p.layer, p.site, shape, stride, False)
    return {**dict.fromkeys(FEATURES, 0.0), **(dict(zip(FEATURES, feats, strict=True)) if feats else {}), "const": 1.0}


@functools.lru_cache(maxsize=4096)
def _cached(fingerprint: str, arch: Arch) -> tuple[tuple[str, tuple[float, ...]], ...]:
    return tuple((name, tuple(f[k] for k in FEATURES)) for name, f in _composed(arch).items())


def component_features(arch: Arch) -> dict[str, dict[str, float]]:
    """Features of each component (``"stem"``, ``"stages.2.blocks.0"`` ... and ``"network"``), in plan order,
    composed from cached runs of each component alone plus the layout permutes and ``const``: they equal
    :func:`traced_component_features` exactly (the same operations summed in the same order)."""
    return {name: dict(zip(FEATURES, values, strict=True)) for name, values in _cached(arch.fingerprint, arch)}


def network_features(arch: Arch) -> dict[str, float]:
    """The network's totals of every feature (sum over components, in plan order)."""
    components = component_features(arch).values()
    return {k: sum(f[k] for f in components) for k in FEATURES}
