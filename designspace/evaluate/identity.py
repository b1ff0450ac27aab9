"""The identity of the code behind a figure: cached latencies and estimates are keyed by it, so that a changed
block (or a changed network assembly, exporter or runtime glue) is measured again instead of reusing figures
of the old code.

A component's identity is the SHA-256 of the source files of the modules that define its builder and its
counter; an Arch's is the hash of the package version, the shared modules every network runs through
(:data:`SHARED_MODULES`) and the identities of the components it uses. File contents are hashed once per
process (a changed file is seen by the next process; tests call :func:`clear`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from pathlib import Path

from designspace.arch import Arch
from designspace.blocks import get

__all__ = ["SHARED_MODULES", "arch_identity", "cache_key", "clear", "component_identity", "module_identity",
           "shared_identity"]

#: modules every built network and every measurement runs through
SHARED_MODULES = ("designspace.network", "designspace.plan", "designspace.blocks.layers",
                  "designspace.blocks.transformer", "designspace.blocks.common", "designspace.evaluate.measure.onnx",
                  "designspace.evaluate.measure.latency", "designspace.evaluate.measure.timing")


@functools.cache
def _file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:  # a zipped or frozen install: the module name still identifies the code
        return "unreadable:" + path


def _module_hash(module_name: str) -> str:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None) if module is not None else None
    return _file_hash(path) if path else f"module:{module_name}"


def module_identity(module_name: str) -> str:
    """16 hex digits identifying the source of one module (imported here if it is not yet)."""
    __import__(module_name)
    return _module_hash(module_name)


def _defining_module(obj: object) -> str:
    target = inspect.unwrap(obj) if callable(obj) else obj
    return getattr(target, "__module__", None) or type(obj).__module__


@functools.cache
def component_identity(type_name: str) -> str:
    """16 hex digits identifying the code of the registered component ``type_name`` (its builder's and its
    counter's modules)."""
    comp = get(type_name)
    modules = sorted({_defining_module(comp.build), _defining_module(comp.count)})
    h = hashlib.sha256()
    for m in modules:
        h.update(f"{m}={_module_hash(m)};".encode())
    return h.hexdigest()[:16]


@functools.cache
def shared_identity() -> str:
    """16 hex digits identifying the version and the shared modules (:data:`SHARED_MODULES`)."""
    from designspace import __version__

    h = hashlib.sha256(f"designspace {__version__};".encode())
    for m in SHARED_MODULES:
        __import__(m)
        h.update(f"{m}={_module_hash(m)};".encode())
    return h.hexdigest()[:16]


def arch_identity(arch: Arch) -> str:
    """16 hex digits identifying the code that builds and measures ``arch``: the version, the shared modules
    and every component type it uses."""
    types = sorted({arch.stem.type, arch.head.type, *(layer.type for stage in arch.stages
                                                       for layer in (*((stage.downsample,) if stage.downsample
                                                                       else ()), *stage.blocks))})
    h = hashlib.sha256(shared_identity().encode())
    for t in types:
        h.update(f"{t}={component_identity(t)};".encode())
    return h.hexdigest()[:16]


def cache_key(arch: Arch) -> str:
    """The key of ``arch``'s cached figures: its fingerprint (the network) and the identity of its code."""
    return f"{arch.fingerprint}@{arch_identity(arch)}"


def clear() -> None:
    """Forgets the hashed files (for a process that edits the code it measures, such as a test)."""
    _file_hash.cache_clear()
    component_identity.cache_clear()
    shared_identity.cache_clear()
