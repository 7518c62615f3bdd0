"""Where in a YAML config an error is: the line of a JSON path's node, and
errors (from a config's decoding or from the engine) restated on the
config's own key and line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .._errors import InvalidParams

__all__ = ["locate_error", "located", "yaml_line"]


def located(path: Path, text: str, message: str, json_path: str) -> InvalidParams:
    unknown = re.search(r"unknown field `([^`]+)`", message)
    # An unknown key is reported on its own line, not its parent's.
    line = (yaml_line(text, f"{json_path}.{unknown.group(1)}", key=True) if unknown
            else yaml_line(text, json_path))
    where = f"{path}, line {line}" if line else str(path)
    return InvalidParams(f"{where}: {message}", path=json_path)


def locate_error(path: Path, text: str, exc: InvalidParams, renames: dict[str, str]) -> InvalidParams:
    """``exc`` (from the library, with a request path) as an error on the
    config's own key and line."""
    json_path = exc.path
    for old, new in renames.items():
        if json_path == old or json_path.startswith(old + ".") or json_path.startswith(old + "["):
            json_path = new + json_path[len(old):]
            break
    message = exc.message.removesuffix(f" (at {exc.path})")
    line = yaml_line(text, json_path)
    where = f"{path}, line {line}" if line else str(path)
    return InvalidParams(f"{where}: {message}", path=json_path)


def yaml_line(text: str, json_path: str, *, key: bool = False) -> int | None:
    """1-based line of the node at ``json_path`` (``$.a.b[2]``), or of the
    deepest existing parent (a missing key is reported where it belongs).
    ``key``: the line of the last key itself, not of its value (a value in
    block style starts on the next line)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None if node is None else node.start_mark.line + 1
    parts = re.findall(r"\.([^.\[]+)|\[(\d+)\]", json_path)
    for i, (name, index) in enumerate(parts):
        child = None
        if name and isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == name), None)
            if pair is None:
                return line
            if key and i == len(parts) - 1:
                return pair[0].start_mark.line + 1
            child = pair[1]
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child = node.value[int(index)]
        if child is None:
            return line
        node, line = child, child.start_mark.line + 1
    return line
