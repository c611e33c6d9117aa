"""``/ui``: the web page, static files built by ``make install`` (services/gateway/ui).

The page is a client of the API like any other: it signs in through
``/auth`` and reads everything else from the REST API and its event
streams. A path under ``/ui`` that is no file of the build is one of the
page's own routes (``/ui/jobs/<id>``), answered with its ``index.html``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import File, Redirect

from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem

INDEX = "index.html"
ASSETS = "assets/"
"""Vite's output folder of content-hashed files: cached for good."""
MEDIA_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


def media_type(path: Path) -> str:
    """The Content-Type of a file of the build (by its suffix)."""
    known = MEDIA_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def page_file(root: Path, path: str) -> Path:
    """The file of the build that ``path`` names, else the page's ``index.html``.

    A path leading out of ``root`` is the index too (never a file outside).
    """
    base = root.resolve()
    wanted = (base / path.lstrip("/")).resolve()
    if wanted.is_relative_to(base) and wanted.is_file():
        return wanted
    return base / INDEX


def page_response(root: Path | None, path: str) -> File:
    """The file of the build at ``path`` (else its index), with its type and caching."""
    if root is None or not (root / INDEX).is_file():
        raise Problem(
            404,
            "the web page is not built here: run `make install` in a checkout "
            "(it builds services/gateway/ui), or set PALETTE_GATEWAY_UI_DIR to a built page",
        )
    target = page_file(root, path)
    immutable = target.parent.name == ASSETS.rstrip("/") and target.name != INDEX
    return File(
        target,
        filename=target.name,
        media_type=media_type(target),
        content_disposition_type="inline",
        headers={
            "Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


class PageController(Controller):
    """The page's static files; no token needed (the page asks the user to sign in)."""

    path = "/ui"
    opt = {"exclude_from_auth": True}
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def index(self, runtime: NamedDependency[GatewayRuntime]) -> File:
        """The page's ``index.html``."""
        return page_response(runtime.settings.ui_dir, "/")

    @get("/{path:path}", sync_to_thread=False)
    def page(self, path: FromPath[str], runtime: NamedDependency[GatewayRuntime]) -> File:
        """A file of the build, or the page's index for any route of the page."""
        return page_response(runtime.settings.ui_dir, path)


class RootController(Controller):
    """``/`` leads a browser to the page."""

    opt = {"exclude_from_auth": True}
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def root(self) -> Response[None]:
        """Redirect to ``/ui/``."""
        return Redirect("/ui/")
