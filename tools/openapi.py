"""Write the gateway's OpenAPI document to a file: the page's API types are generated from it.

``make install`` runs it before building the page (services/gateway/ui), so a
changed schema breaks the page's type check, not a user.

Usage: python -m tools.openapi PATH
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from palette.gateway.app import create_app
from palette.gateway.settings import GatewaySettings


def document() -> dict[str, object]:
    """The OpenAPI document the gateway serves at ``/schema/openapi.json``."""
    schema: dict[str, object] = create_app(GatewaySettings()).openapi_schema.to_schema()
    return schema


def main(argv: list[str]) -> int:
    """Write the document to ``argv[0]`` (only when it changed, so make sees no change)."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m tools.openapi PATH\n")
        return 2
    target = Path(argv[0])
    text = json.dumps(document(), indent=2, sort_keys=True) + "\n"
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
