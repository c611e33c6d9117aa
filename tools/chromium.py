"""Make sure Debian's Chromium is installed: the page's browser tests drive it headless.

``make install`` runs it, and so do the browser tests' fixtures. Where
``/usr/bin/chromium`` is missing it is installed with apt-get (as root, or
with sudo where that needs no password); Playwright never downloads a
browser of its own.

Usage: python -m tools.chromium
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("chromium", "fonts-dejavu-core")


def _apt(*args: str) -> bool:
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            return False
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run([*prefix, "apt-get", *args], env=env, check=False)
    return done.returncode == 0


def ensure() -> Path:
    """The Chromium executable, installed first when it is missing.

    Raises:
        RuntimeError: when it is missing and cannot be installed here.
    """
    if CHROMIUM.is_file():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{CHROMIUM} is missing and there is no apt-get: install Chromium so that it is there"
        )
    install = ("install", "-y", "-qq", "--no-install-recommends", *PACKAGES)
    if not _apt(*install) and not (_apt("update", "-qq") and _apt(*install)):
        raise RuntimeError(
            f"{CHROMIUM} is missing and `apt-get install chromium` failed "
            "(run it as root: the browser tests need Debian's chromium)"
        )
    if not CHROMIUM.is_file():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def main() -> int:
    """Install Chromium where it is missing; exit 1 with the reason when that fails."""
    try:
        path = ensure()
    except RuntimeError as exc:
        sys.stderr.write(f"tools.chromium: {exc}\n")
        return 1
    if "-v" in sys.argv:
        sys.stdout.write(f"chromium: {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
