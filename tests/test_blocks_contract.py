"""One contract over every registered component: a new registration is tested with no new test code.

For each component (at its defaults and at the variants below), each stride it supports, an odd
width, batch 1 and 4, a non-square input: output shape and layout, finite values, batch
independence, eval-mode determinism, gradients reaching every parameter, the analytic counter
matching the module's parameters, and ONNX export (opset 17) matching PyTorch within 1e-4 of the
output's scale.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from designspace.blocks import KINDS, Component, Site, components
from designspace.evaluate.measure.onnx import export_onnx, run_onnx

# Non-default settings that exercise other code paths; widths must stay valid at WIDTH.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "mbconv": [{"exp_ratio": 1.0}, {"se_ratio": 0.25, "kernel_size": 5, "act": "silu"}],
    "efficientmod": [{"exp_ratio": 1}, {"layer_scale": 0.0, "kernel_size": 3}],
    "irmb": [{"attn": True, "dim_head": 7, "window_size": 4}, {"attn": True, "dim_head": 7, "window_size": 0},
             {"attn": True, "dim_head": 7, "attn_pre": False, "exp_ratio": 3.0},
             {"se_ratio": 0.5, "norm": "ln", "act": "gelu"}],
    "shma": [{"qk_reduction": 4, "attn_ratio": 2.0, "layer_scale": 1e-6}],
    "iformer_conv": [{"layer_scale": 1e-6, "exp_ratio": 3.0}],
    "sam": [{"heads": 3}, {"heads": 1, "ffn": "mlp", "layer_scale": 1e-4}],
    "msa": [{"num_heads": 3}, {"num_heads": 2, "head_dim": 8, "qkv_bias": False, "v_local_conv": False,
                               "ffn": "mlp", "norm_eps": 1e-5}],
    "conv_ln": [{"pre_norm": True}],
    "mbv2_head": [{"width": 0}],
    "emo_stem": [{"se_ratio": 0.0}],
    "convnext_ln": [{"kernel_size": 3, "exp_ratio": 3.0, "act": "relu"}],
    "iformer_attn": [{"num_heads": 3}, {"modulation": True, "cpe": True, "gate_act": "silu", "norm": "pre_ln"},
                     {"modulation": True, "num_heads": 3, "ffn_ratio": 3.0}],
    "patchify_stem": [{"patch_size": 2}],
}
# Defaults some components need to be valid at an odd width (heads must divide it).
AT_ODD_WIDTH: dict[str, dict[str, Any]] = {"sam": {"heads": 3}, "msa": {"num_heads": 3}}
WIDTH = 21  # odd, divisible by 3 and 7
HW = (13, 10)  # non-square, odd: catches transposed axes and padding


def _cases() -> list[Any]:
    cases = []
    for kind in KINDS:
        for comp in components(kind):
            for i, variant in enumerate([{}, *VARIANTS.get(comp.name, [])]):
                params = {**comp.defaults(), **AT_ODD_WIDTH.get(comp.name, {}), **variant}
                for stride in comp.strides:
                    cases.append(pytest.param(comp, params, stride, id=f"{comp.name}-v{i}-s{stride}"))
    return cases


def _site(comp: Component, stride: int) -> Site:
    if comp.kind == "stem":
        return Site(3, WIDTH, 1, (64, 50))
    if comp.kind == "head":
        return Site(WIDTH, 10, 1, HW)
    out = WIDTH + 6 if comp.changes_width else WIDTH
    return Site(WIDTH, out, stride, HW)


def _input(comp: Component, site: Site, params: dict[str, Any], batch: int) -> torch.Tensor:
    h, w = site.hw
    layout, _ = comp.layouts(params)
    shape = (batch, site.in_chs, h, w) if layout == "nchw" else (batch, h, w, site.in_chs)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(batch))


def _expected_shape(comp: Component, site: Site, params: dict[str, Any], batch: int) -> tuple[int, ...]:
    if comp.kind == "head":
        return (batch, site.out_chs)
    oh, ow = comp.out_hw(site, params)
    _, layout = comp.layouts(params)
    return (batch, site.out_chs, oh, ow) if layout == "nchw" else (batch, oh, ow, site.out_chs)


@pytest.mark.parametrize(("comp", "params", "stride"), _cases())
def test_component_contract(comp: Component, params: dict[str, Any], stride: int) -> None:
    torch.manual_seed(0)
    site = _site(comp, stride)
    assert not comp.check(site, params), "test case must be valid"
    module = comp.build(site, params, 0.1 if comp.kind == "block" else 0.0)
    for p in module.parameters():  # spread BN/LN affine params off their identity init
        if p.ndim == 1:
            p.data.uniform_(0.5, 1.5)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    module.eval()

    x4 = _input(comp, site, params, 4)
    with torch.no_grad():
        y4 = module(x4)
        y1 = module(x4[:1])
        y4_again = module(x4)
    assert tuple(y4.shape) == _expected_shape(comp, site, params, 4)
    assert torch.isfinite(y4).all()
    assert torch.equal(y4, y4_again), "eval mode must be deterministic"
    torch.testing.assert_close(y1, y4[:1], rtol=1e-4, atol=1e-5 * float(y4.abs().max()))  # batch independence

    # gradients reach every parameter (eval mode: BatchNorm does not cancel the biases before it)
    x = x4.clone().requires_grad_(True)
    (module(x) * torch.randn_like(y4)).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reaches {missing}"
    assert x.grad is not None and torch.isfinite(x.grad).all()

    # the analytic counter knows every parameter
    assert comp.count(site, params).params == sum(p.numel() for p in module.parameters())

    # training mode runs (stochastic depth, BatchNorm statistics) with batch 4
    module.train()
    assert torch.isfinite(module(x4)).all()

    # ONNX export at opset 17, run with ONNX Runtime
    module.eval()
    onnx_bytes = export_onnx(module, x4[:1])
    with torch.no_grad():
        ref = module(x4[:1])
    got = run_onnx(onnx_bytes, x4[:1])
    scale = float(ref.abs().max())
    assert float((got - ref).abs().max()) <= 1e-4 * scale


def test_every_kind_is_registered() -> None:
    for kind in KINDS:
        assert components(kind), f"no {kind} registered"
