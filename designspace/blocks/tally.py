"""Analytic parameter and MAC counting from shapes alone.

The convention (shared with the traced counter in :mod:`designspace.evaluate.counts.analytic`):

* one fused multiply-add is one MAC, per image (batch 1);
* counted: convolutions (``N_out * C_in/groups * k_h * k_w * C_out``), linear layers
  (``tokens * in * out``), matrix products including attention's ``Q K^T`` and ``A V``
  (``batch * n * k * m``), normalization layers as fvcore counts them (LayerNorm/GroupNorm
  5 per element with affine, BatchNorm in eval mode 2 per element with affine) and global average
  pooling (1 per input element);
* not counted: biases, activations, softmax, element-wise sums and products (residuals,
  modulation, gates, layer scale), reshapes, padding.

Parameters are every element of every ``nn.Parameter`` (buffers such as BatchNorm running
statistics are not parameters).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["MAC_CATEGORIES", "Tally", "conv_out"]

#: MAC categories in the order they are reported.
MAC_CATEGORIES = ("conv", "linear", "matmul", "norm", "pool")


def conv_out(size: int, kernel: int, stride: int = 1, padding: int | None = None) -> int:
    """Output length of a convolution along one axis (``padding`` defaults to ``kernel // 2``)."""
    if padding is None:
        padding = kernel // 2
    return (size + 2 * padding - kernel) // stride + 1


@dataclass
class Tally:
    """Accumulates parameters and MACs (by category) of one component, batch 1.

    Methods take widths in channels and spatial sizes in pixels/tokens; each adds the weights
    it creates to :attr:`params` and its multiply-adds to :attr:`macs`.
    """

    params: int = 0
    macs: Counter[str] = field(default_factory=Counter)

    @property
    def total_macs(self) -> int:
        """All MACs of the component under the module's convention."""
        return sum(self.macs.values())

    def add(self, other: Tally) -> Tally:
        """Adds another tally into this one and returns ``self``."""
        self.params += other.params
        self.macs.update(other.macs)
        return self

    def conv(
        self, cin: int, cout: int, kernel: int | tuple[int, int], out_hw: tuple[int, int], *,
        groups: int = 1, bias: bool = False,
    ) -> Tally:
        """A 2-D convolution producing ``cout`` channels at ``out_hw``."""
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        weights = cout * (cin // groups) * kh * kw
        self.params += weights + (cout if bias else 0)
        self.macs["conv"] += weights * out_hw[0] * out_hw[1]
        return self

    def linear(self, fin: int, fout: int, tokens: int, *, bias: bool = True) -> Tally:
        """A linear layer applied to ``tokens`` vectors."""
        self.params += fin * fout + (fout if bias else 0)
        self.macs["linear"] += fin * fout * tokens
        return self

    def matmul(self, batch: int, n: int, k: int, m: int) -> Tally:
        """``batch`` products of an (n x k) by a (k x m) matrix."""
        self.macs["matmul"] += batch * n * k * m
        return self

    def attention(self, heads: int, nq: int, nk: int, dqk: int, dv: int, *, windows: int = 1) -> Tally:
        """Softmax attention: ``Q K^T`` and ``A V`` for ``windows * heads`` independent heads."""
        return self.matmul(windows * heads, nq, dqk, nk).matmul(windows * heads, nq, nk, dv)

    def batchnorm(self, channels: int, elements_per_channel: int) -> Tally:
        """BatchNorm (eval mode, affine): 2 MACs per element, weight and bias parameters."""
        self.params += 2 * channels
        self.macs["norm"] += 2 * channels * elements_per_channel
        return self

    def layernorm(self, channels: int, tokens: int) -> Tally:
        """LayerNorm over ``channels`` (affine) on ``tokens`` vectors: 5 MACs per element."""
        self.params += 2 * channels
        self.macs["norm"] += 5 * channels * tokens
        return self

    def pool(self, elements: int) -> Tally:
        """Global average pooling over ``elements`` input values."""
        self.macs["pool"] += elements
        return self

    def parameters(self, count: int) -> Tally:
        """Free parameters that do no counted MACs (layer scale, ...)."""
        self.params += count
        return self
