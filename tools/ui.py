"""Build the web page (services/gateway/ui) that the gateway serves at ``/ui``.

``make install`` runs it: ``npm ci`` from the lock file when ``node_modules``
is older than it, the gateway's OpenAPI document written to ``openapi.json``
(the page's API types are generated from it, so a changed schema breaks the
type check), then ``npm run build`` (types, type check, Vite) unless the
sources, the lock file and the document are those of the last build. The
build (``dist/``) is never committed; nothing is fetched at run time.

Usage: python -m tools.ui [--force]
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tools.openapi import main as write_openapi

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "services" / "gateway" / "ui"
DIST = UI / "dist"
STAMP = DIST / ".build-hash"
INPUTS = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts")


def inputs() -> Iterable[Path]:
    """Every file the build reads from the repository, in a stable order."""
    yield from (UI / name for name in INPUTS)
    yield UI / "openapi.json"
    yield from sorted(p for p in (UI / "src").rglob("*") if p.is_file() and p.name != "schema.d.ts")


def fingerprint() -> str:
    """A hash of every input's path and bytes."""
    digest = hashlib.sha256()
    for path in inputs():
        digest.update(str(path.relative_to(UI)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def npm(*args: str) -> None:
    """Run npm in the page's folder; exit with its message when it fails."""
    done = subprocess.run([shutil.which("npm") or "npm", *args], cwd=UI, check=False)
    if done.returncode != 0:
        raise SystemExit(f"tools.ui: npm {' '.join(args)} failed (exit {done.returncode})")


def main(argv: list[str]) -> int:
    """Install the page's packages when needed, then build it when its inputs changed."""
    force = "--force" in argv
    if shutil.which("npm") is None:
        sys.stderr.write(
            "tools.ui: npm is missing: the web page needs Node.js 20.19+ with npm "
            "(e.g. from nodejs.org or your distribution) to build\n"
        )
        return 1
    installed = UI / "node_modules" / ".package-lock.json"
    lock = UI / "package-lock.json"
    if force or not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm("ci", "--no-audit", "--no-fund", "--loglevel=error")
    write_openapi([str(UI / "openapi.json")])
    wanted = fingerprint()
    built = STAMP.read_text().strip() if STAMP.is_file() else None
    if force or built != wanted or not (DIST / "index.html").is_file():
        npm("run", "build", "--silent")
        STAMP.write_text(wanted + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
