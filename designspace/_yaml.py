"""Documents in and out: the one safe loader for every YAML or JSON document designspace reads (spaces, Archs,
device profiles, recipes, the files under results), and dumping with leaf mappings in flow style.

Loading remembers each field's line and refuses, each with one ``file:line: problem (fix)`` line and in
bounded time and memory: files over :data:`MAX_BYTES`, binary content (NUL bytes, invalid UTF-8), nesting
deeper than :data:`MAX_DEPTH`, more than :data:`MAX_ALIASES` aliases or a document that expands (through
aliases and merge keys) to more than :data:`MAX_NODES` values, recursive aliases, explicit tags, duplicate
keys, integers of more than :data:`MAX_INT_DIGITS` digits, and NaN or infinity. The structure is checked on
PyYAML's event stream before any node is built (the composer recurses once per nesting level; events do not).

PyYAML's safe loader is used with one addition: ``1e-4`` (no dot) reads as a float, as users
expect, not as the string YAML 1.1 makes of it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from designspace.exceptions import DocumentError

__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_JSON_BYTES",
    "MAX_NODES",
    "Ctx",
    "Lines",
    "dump_yaml",
    "load_json",
    "load_yaml",
    "read_document",
]

#: the largest YAML document read, bytes (the largest shipped one is under 4 KiB; libyaml parses this much in
#: about 0.5 s here)
MAX_BYTES = 256 << 10
#: the largest JSON document read, bytes (a results summary of a 100,000-trial study is a few MiB)
MAX_JSON_BYTES = 64 << 20
#: the deepest nesting of mappings and lists (an Arch nests 6 deep)
MAX_DEPTH = 64
#: aliases (``*name``) in one document
MAX_ALIASES = 1000
#: values a document may expand to, aliases and merge keys expanded (an Arch of 1,000 blocks has about 10,000)
MAX_NODES = 50_000
#: digits of an integer (a 64-bit integer has 19)
MAX_INT_DIGITS = 24

#: Line (1-based) of each field, keyed by its path (tuple of keys and list indices).
Lines = dict[tuple[Any, ...], int]


@dataclass
class Ctx:
    """Where a document came from: turns a field path into a ``file:line: path: problem (fix)`` error."""

    file: str = "<arch>"
    lines: Lines = field(default_factory=dict)

    def error(self, path: tuple[Any, ...], problem: str, fix: str = "") -> DocumentError:
        """The error for ``path`` (its own line, or its nearest ancestor's when it has none)."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return DocumentError(problem, file=self.file, line=self.lines.get(probe), path=".".join(map(str, path)),
                             fix=fix)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml: 10x faster
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_MERGE = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}


@dataclass
class _Walk:
    """One document's walk: its loader, file, lines, the values built so far and the nodes on the path."""

    loader: _Loader
    file: str
    lines: Lines
    built: int = 0
    open_nodes: set[int] = field(default_factory=set)

    def fail(self, node: yaml.Node, path: tuple[Any, ...], problem: str, fix: str) -> DocumentError:
        return DocumentError(problem, file=self.file, line=node.start_mark.line + 1, path=_dotted(path), fix=fix)


def _scalar(w: _Walk, node: yaml.ScalarNode, path: tuple[Any, ...]) -> Any:
    if node.tag not in _SCALAR_TAGS:
        raise w.fail(node, path, f"YAML tag {node.tag!r} is not allowed",
                     "remove the tag; documents hold plain mappings, lists and values")
    if node.tag == "tag:yaml.org,2002:int":
        digits = sum(ch.isdigit() for ch in node.value)
        if digits > MAX_INT_DIGITS:
            raise w.fail(node, path, f"an integer of {digits} digits exceeds the limit of {MAX_INT_DIGITS}",
                         "write a number of ordinary size")
    value = w.loader.construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        raise w.fail(node, path, f"{node.value!r} is not a finite number (NaN and infinity are refused)",
                     "write a finite number")
    return value


def _walk(w: _Walk, node: yaml.Node, path: tuple[Any, ...]) -> Any:
    w.built += 1
    if w.built > MAX_NODES:
        raise w.fail(node, path, f"the document expands to more than {MAX_NODES:,} values (aliases and merge "
                                 "keys expanded)", "write the values out instead of nesting aliases")
    if len(path) > MAX_DEPTH:
        raise w.fail(node, path, f"nesting deeper than {MAX_DEPTH} levels", "flatten the document")
    if isinstance(node, yaml.ScalarNode):
        return _scalar(w, node, path)
    if node.tag not in _PLAIN_TAGS:
        raise w.fail(node, path, f"YAML tag {node.tag!r} is not allowed",
                     "remove the tag; documents hold plain mappings, lists and values")
    if id(node) in w.open_nodes:
        raise w.fail(node, path, "a recursive alias (a value that contains itself)", "remove the alias")
    w.open_nodes.add(id(node))
    try:
        if isinstance(node, yaml.MappingNode):
            return _mapping(w, node, path)
        items = []
        for i, item in enumerate(node.value):
            w.lines[path + (i,)] = item.start_mark.line + 1
            items.append(_walk(w, item, path + (i,)))
        return items
    finally:
        w.open_nodes.discard(id(node))


def _mapping(w: _Walk, node: yaml.MappingNode, path: tuple[Any, ...]) -> dict[str, Any]:
    """A mapping; ``<<`` merge keys are expanded here (not by PyYAML's ``flatten_mapping``, which copies
    merged entries before anything could count them): explicit keys win, then earlier merged mappings."""
    out: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for src in sources:
                value = _walk(w, src, path)
                if not isinstance(value, dict):
                    raise w.fail(src, path, "a merge key '<<' must merge mappings", "merge an anchored mapping")
                for k, v in value.items():
                    merged.setdefault(k, v)
            continue
        key = _scalar(w, key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise DocumentError(f"keys must be names, got {key!r}", file=w.file, line=line,
                                path=_dotted(path), fix="quote the key or use a name")
        if key in out:
            raise DocumentError(f"duplicate key {key!r} (first at line {w.lines[path + (key,)]})", file=w.file,
                                line=line, path=_dotted(path + (key,)), fix="keep one of the two")
        w.lines[path + (key,)] = line
        out[key] = _walk(w, value_node, path + (key,))
    if merged:
        out = {**{k: v for k, v in merged.items() if k not in out}, **out}
    return out


def _line(event: yaml.Event) -> int | None:
    return event.start_mark.line + 1 if event.start_mark is not None else None


def _prescan(text: str, file: str) -> None:
    """Checks nesting depth and alias count on the event stream, before any node is composed (composing builds
    no Python objects; tags are refused by the walk, with their field's path)."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise DocumentError(f"nesting deeper than {MAX_DEPTH} levels", file=file,
                                    line=_line(event), fix="flatten the document")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise DocumentError(f"more than {MAX_ALIASES} aliases", file=file, line=_line(event),
                                    fix="write the values out instead of aliasing them")


def _dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def load_yaml(text: str, file: str = "<string>") -> tuple[Any, Lines]:
    """Parses one YAML document.

    Args:
        text: the document.
        file: its name, used in error messages.

    Returns:
        The data (dicts, lists, scalars) and the line of every field.

    Raises:
        DocumentError: a syntax error, several documents, a duplicate key, a non-name key, or a tag
            the safe loader does not allow; the message has the file and line.
    """
    _check_text(text, file)
    loader = _Loader(text)
    lines: Lines = {}
    try:
        _prescan(text, file)
        node = loader.get_single_node()
        if node is None:
            return None, lines
        lines[()] = node.start_mark.line + 1
        return _walk(_Walk(loader, file, lines), node, ()), lines
    except yaml.MarkedYAMLError as err:
        # an unclosed bracket is detected lines later: point at where the construct began
        mark = err.context_mark or err.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = str(err.problem or "")
        if err.context:
            problem = f"{err.context}: {problem}"
        if err.context_mark is not None and err.problem_mark is not None \
                and err.problem_mark.line != err.context_mark.line:
            problem += f" (noticed at line {err.problem_mark.line + 1})"
        raise DocumentError(f"YAML syntax error: {problem}", file=file, line=line,
                            fix="check the indentation, colons and brackets on this line") from None
    except yaml.YAMLError as err:
        raise DocumentError(f"YAML error: {' '.join(str(err).split())}", file=file,
                            fix="fix the YAML syntax") from None
    except RecursionError:  # a guard: the limits above keep every recursion far shallower
        raise DocumentError(f"nesting deeper than {MAX_DEPTH} levels", file=file, fix="flatten the document") from None
    finally:
        loader.dispose()


def _check_text(text: str, file: str, limit: int = MAX_BYTES) -> None:
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > limit else len(text)
    if size > limit:
        raise DocumentError(f"the document is {size:,} bytes, over the limit of {limit:,}", file=file,
                            fix="a designspace document is a few kilobytes: check that this is the right file")
    nul = text.find("\x00")
    if nul >= 0:
        raise DocumentError("the document holds a NUL character: binary data, not text", file=file,
                            line=text.count("\n", 0, nul) + 1, fix="give a YAML text file")


def read_document(path: str | Path, what: str = "document", limit: int = MAX_BYTES) -> str:
    """The text of a document file, read with the limits of :func:`load_yaml` (size: ``limit`` bytes, binary
    content); for JSON pass ``limit=MAX_JSON_BYTES``.

    Raises:
        DocumentError: missing, unreadable, too large, not UTF-8 text; the message names the file and the fix.
    """
    label = str(path)
    if "\x00" in label:
        raise DocumentError(f"the path of the {what} holds a NUL character", file=repr(label)[1:-1][:200],
                            fix="give a file path")
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise DocumentError(f"is a folder, not a {what}", file=label, fix="give a .yaml file")
        if size > limit:
            raise DocumentError(f"the file is {size:,} bytes, over the limit of {limit:,}", file=label,
                                fix=f"a {what} is a few kilobytes: check that this is the right file")
        data = p.read_bytes()
    except OSError as err:
        raise DocumentError(f"cannot read the {what}: {err.strerror or err}", file=label,
                            fix="check the path") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DocumentError(f"the file is not UTF-8 text ({err.reason} at byte {err.start})", file=label,
                            fix="save it as UTF-8 YAML") from None
    _check_text(text, label, limit)
    return text


def load_json(text: str, file: str = "<string>") -> Any:
    """Parses a JSON document with the limits of :func:`load_yaml` (size, depth, NaN/infinity refused).

    Raises:
        DocumentError: invalid JSON or a limit exceeded, naming the file and line.
    """
    _check_text(text, file, MAX_JSON_BYTES)

    def refuse(name: str) -> Any:
        raise DocumentError(f"{name} is not a finite number", file=file, fix="write a finite number")

    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise DocumentError(f"an integer of {len(digits)} digits exceeds the limit of {MAX_INT_DIGITS}",
                                file=file, fix="write a number of ordinary size")
        return int(digits)

    depth = max_depth = 0
    in_string = escaped = False
    for ch in text:  # the depth before parsing: json's decoder recurses once per level
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            max_depth = max(max_depth, depth)
        elif ch in "]}":
            depth -= 1
    if max_depth > MAX_DEPTH:
        raise DocumentError(f"nesting deeper than {MAX_DEPTH} levels", file=file, fix="flatten the document")
    try:
        return json.loads(text, parse_constant=refuse, parse_int=bounded_int)
    except json.JSONDecodeError as err:
        raise DocumentError(f"invalid JSON: {err.msg}", file=file, line=err.lineno,
                            fix="rewrite the file (it is written by designspace; a partial write is refused)"
                            ) from None



class _Dumper(yaml.SafeDumper):
    pass


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    leaf = all(not isinstance(v, (dict, list)) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=leaf)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    leaf = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=leaf)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(data: Any) -> str:
    """YAML text of ``data``: keys in insertion order, mappings/lists of scalars on one line."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
