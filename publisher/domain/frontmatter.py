"""YAML for article front matter: plain data only, with its cost bounded before parsing.

`yaml.safe_load` still expands aliases: 293 bytes of nested `&a [*a, *a, ...]`
became 4.7 MB after 2.5 s, ×10 per level (a "billion laughs"). Front matter
is a handful of scalar fields and a tag list, so anchors and aliases are
refused outright (`NoAliasLoader`), as are documents over `MAX_YAML_BYTES`
and nesting deeper than `MAX_YAML_DEPTH` (PyYAML's composer recurses per
level, so a deep `[[[[...` would otherwise end in a RecursionError).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import Node

from publisher.domain.errors import InputError

FIELD = "front matter"
MAX_YAML_BYTES = 64 * 1024
MAX_YAML_DEPTH = 20


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses anchors, aliases and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor):
            raise InputError(FIELD, "YAML anchors and aliases (& and *) are not accepted")
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_YAML_DEPTH:
                raise InputError(FIELD, f"nests more than {MAX_YAML_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1


def load(text: str) -> Any:
    """The YAML document `text` as plain data, or `InputError` naming the front matter."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise InputError(FIELD, f"is {size:,} bytes; the limit is {MAX_YAML_BYTES:,}")
    try:
        return yaml.load(text, Loader=NoAliasLoader)
    except yaml.YAMLError as exc:
        raise InputError(FIELD, f"invalid YAML: {exc}") from None
