"""YAML in and out: loading that remembers each field's line and refuses duplicate keys; dumping
with leaf mappings in flow style (one block per line).

PyYAML's safe loader is used with one addition: ``1e-4`` (no dot) reads as a float, as users
expect, not as the string YAML 1.1 makes of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from designspace.exceptions import DocumentError

__all__ = ["Ctx", "Lines", "dump_yaml", "load_yaml"]

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


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _walk(loader: _Loader, node: yaml.Node, path: tuple[Any, ...], lines: Lines, file: str) -> Any:
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise DocumentError(f"YAML tag {node.tag!r} is not allowed", file=file, line=node.start_mark.line + 1,
                            path=_dotted(path), fix="remove the tag; documents hold plain mappings, lists and values")
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves '<<' merge keys
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise DocumentError(f"keys must be names, got {key!r}", file=file, line=line,
                                    path=_dotted(path), fix="quote the key or use a name")
            if key in out:
                raise DocumentError(f"duplicate key {key!r} (first at line {lines[path + (key,)]})", file=file,
                                    line=line, path=_dotted(path + (key,)), fix="keep one of the two")
            lines[path + (key,)] = line
            out[key] = _walk(loader, value_node, path + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            items.append(_walk(loader, item, path + (i,), lines, file))
        return items
    return loader.construct_object(node, deep=True)


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
    loader = _Loader(text)
    lines: Lines = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        lines[()] = node.start_mark.line + 1
        return _walk(loader, node, (), lines, file), lines
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
        raise DocumentError(f"YAML error: {err}", file=file, fix="fix the YAML syntax") from None
    finally:
        loader.dispose()


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
