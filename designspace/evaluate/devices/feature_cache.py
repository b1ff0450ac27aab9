"""Device cost features of single components, kept across processes in ``results/cache.sqlite``
(:class:`designspace.evaluate.cache.Cache`, kind ``component_features``): a space's 2,000 samples meet thousands of
(component, site) pairs, 4-15 ms a run the first time (docs/devices.md, 'The cost model').

Keys: the component type with its code identity, a hash of its parameter values, the site, and the input's shape,
strides and provenance. Context: the torch version and the identity of the features module and the shared network
code, so a changed recorder or block never reuses old figures. Values are JSON numbers, which read back to the same
floats bit for bit. Reads are one query per process (at first use); writes only in :func:`flush`, in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from designspace.arch import Layer
from designspace.blocks import Site

__all__ = ["KIND", "flush", "get", "key", "put"]

KIND = "component_features"

_loaded: dict[str, dict[str, Any]] | None = None
_pending: dict[str, dict[str, Any]] = {}


def _context() -> str:
    import torch

    from designspace.evaluate.identity import module_identity, shared_identity

    return f"meta-fp16 torch {torch.__version__} features {module_identity('designspace.evaluate.devices.features')} " \
           f"shared {shared_identity()}"


def key(layer: Layer, site: Site, shape: tuple[int, ...], stride: tuple[int, ...], conv_input: bool) -> str:
    """The cache key of one component run alone on one input (see the module docstring)."""
    from designspace.evaluate.identity import component_identity

    params = hashlib.sha256(repr(layer.params).encode()).hexdigest()[:16]
    where = f"{site.in_chs}-{site.out_chs}-s{site.stride}-{site.hw[0]}x{site.hw[1]}"
    inp = f"{'x'.join(map(str, shape))}/{'.'.join(map(str, stride))}/{int(conv_input)}"
    return f"{layer.type}@{component_identity(layer.type)}:{params}:{where}:{inp}"


def _store() -> dict[str, dict[str, Any]]:
    global _loaded
    if _loaded is None:
        from designspace.evaluate.cache import Cache, default_cache_path

        if not default_cache_path().exists():  # reading never creates the cache (or the results folder)
            _loaded = {}
            return _loaded
        with contextlib.closing(Cache()) as cache:
            _loaded = dict(cache.rows(KIND, _context()))
    return _loaded


def get(k: str) -> dict[str, Any] | None:
    """The stored run under ``k`` (``features`` (a dict or None), ``shape``, ``stride``, ``conv_output``) or None."""
    return _pending.get(k) or _store().get(k)


def put(k: str, value: dict[str, Any]) -> None:
    """Remembers a run for the next :func:`flush`."""
    if k not in _store():
        _pending[k] = value


def flush() -> int:
    """Writes the runs met since the last flush to the evaluation cache; returns how many (0 where the cache cannot
    be written: it degrades to recomputing, never to an error)."""
    from designspace.evaluate.cache import Cache

    if not _pending:
        return 0
    with contextlib.closing(Cache()) as cache:
        written = cache.put_many(KIND, _context(), _pending)
    if written:
        _store().update(_pending)
        _pending.clear()
    return written
