"""designspace: a design-space explorer for efficient vision backbones.

The public API::

    arch = designspace.load_arch("iformer_m")      # a zoo name or an Arch YAML file
    model = designspace.build_model(arch)          # an nn.Module
    counts = designspace.count(arch)               # analytic params and MACs
"""

from designspace.arch import Arch, Layer, Stage
from designspace.evaluate.counts.analytic import Counts, count
from designspace.evaluate.counts.traced import trace_count
from designspace.exceptions import DesignspaceError, DocumentError, RegistryError
from designspace.network import Network, build_model, load_arch

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "Counts",
    "DesignspaceError",
    "DocumentError",
    "Layer",
    "Network",
    "RegistryError",
    "Stage",
    "__version__",
    "build_model",
    "count",
    "load_arch",
    "trace_count",
]
