"""Reading a YAML config file safely: its encoding, and aliases that would expand without bound.

Kept apart from the schema (``tunerail.config``): these are about the bytes and the YAML tree,
before any key is validated.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

from tunerail.errors import ConfigError, Problem


def read_config_text(path: Path) -> str:
    """The config's text: UTF-8, or UTF-16/32 with a byte-order mark (as Windows editors save it); else a named error."""
    raw = path.read_bytes()
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    codec = next((name for bom, name in boms if raw.startswith(bom)), "utf-8-sig")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            Problem(
                f"is not {codec.removesuffix('-sig')} text: byte {exc.start} cannot be decoded ({exc.reason})",
                file=str(path),
                line=raw.count(b"\n", 0, exc.start) + 1,
                fix="save the config as UTF-8 (e.g. `iconv -f <encoding> -t utf-8 tunerail.yaml`)",
            )
        ) from None


MAX_CONFIG_NODES = 100_000  # a real config has a few hundred values; aliases may not multiply them past this


def refuse_alias_bomb(data: Any, path: Path) -> None:
    """Refuse YAML whose aliases would expand to more than ``MAX_CONFIG_NODES`` values ("billion laughs").

    ruamel keeps an alias as a reference to the anchored node, so loading is cheap; the expansion
    happens when the tree is walked. Sizes are counted once per distinct node, so the check is
    linear in the file, and it runs before anything walks the expanded tree.
    """
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) not in sizes:
            sizes[id(node)] = 0  # a self-referencing alias counts as one
            children = node.values() if isinstance(node, dict) else node
            sizes[id(node)] = min(1 + sum(size(child) for child in children), MAX_CONFIG_NODES + 1)
        return sizes[id(node)]

    if size(data) > MAX_CONFIG_NODES:
        raise ConfigError(
            Problem(
                f"its YAML aliases (*name) expand to more than {MAX_CONFIG_NODES:,} values: refused before expanding them",
                file=str(path),
                fix="a config needs no alias repeated inside another alias: write the values out, or use one level of anchors",
            )
        )
