"""YAML loading that keeps what error messages need: duplicate-key detection and line numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int, path: tuple[str, ...]) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key = key
        self.line = line
        self.path_text = ".".join(path) or "(top level)"


class NonStringKeyError(yaml.YAMLError):
    """A mapping key YAML reads as something other than a string (``on:`` is True, ``1.0:`` a float)."""

    def __init__(self, key: str, kind: str, line: int, path: tuple[str, ...]) -> None:
        super().__init__(f"key {key!r} at line {line} is read as {kind}")
        self.key = key
        self.kind = kind
        self.line = line
        self.path_text = ".".join(path) or "(top level)"


_KEY_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge")  # merge: `<<: *shared`
_TAG_KINDS = {"bool": "a boolean", "int": "a number", "float": "a number", "null": "null", "timestamp": "a date"}


def _check_duplicates(root: yaml.Node) -> None:
    """Walk the node tree (iteratively, each node once: an alias may refer to itself)."""
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag not in _KEY_TAGS:
                    kind = _TAG_KINDS.get(key_node.tag.rsplit(":", 1)[-1], key_node.tag)
                    raise NonStringKeyError(key, kind, key_node.start_mark.line + 1, path)
                if key in seen:
                    raise DuplicateKeyError(key, key_node.start_mark.line + 1, path)
                seen.add(key)
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, str(index))) for index, item in enumerate(node.value))


@dataclass(frozen=True)
class YamlSource:
    """Parsed YAML data plus its node tree, so a field path can be turned into a line number."""

    data: Any
    root: yaml.Node | None

    @classmethod
    def parse(cls, text: str) -> YamlSource:
        """The text parsed once: its node tree checked, then built into data (``yaml.safe_load`` does
        the same two steps; parsing again for them doubled the time, 5 ms for the shipped spec)."""
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return cls(data=None, root=None)
            _check_duplicates(root)
            return cls(data=loader.construct_document(root), root=root)
        finally:
            loader.dispose()

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node on ``path`` that exists."""
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in path:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if str(key_node.value) == str(part):
                        child = value_node
                        line = key_node.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return line
