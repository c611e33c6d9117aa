"""Health probe of a Plot Palette container; standard library only, exit 0 = healthy.

Usage:
    python /opt/palette/probe.py http URL
        Healthy when ``GET URL`` answers 200 (the gateway's ``/health`` or ``/ready``).
    python /opt/palette/probe.py amqp
        Healthy when this container holds an established TCP connection to the
        broker's port (from ``RABBITMQ_URL``: 5672, 5671 for ``amqps``, or the
        port it names). The message-driven services (scheduler, generator,
        accounting) have no HTTP endpoint; a live AMQP connection is what they
        need to do their work, and FastStream reconnects by itself when it drops,
        so a probe that fails for a while means the service cannot reach the
        broker. It reads ``/proc/net/tcp{,6}``, which list the sockets of the
        container's (the pod's) network namespace.

Used by docker-compose.yml's health checks and the Kubernetes exec probes; the
image has it at ``/opt/palette/probe.py``.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit

ESTABLISHED = "01"
PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


def broker_port(url: str) -> int:
    """The TCP port of an AMQP URL."""
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 5671 if parts.scheme == "amqps" else 5672


def established_remote_ports(lines: Iterable[str]) -> set[int]:
    """Remote ports of the established connections in a ``/proc/net/tcp`` table."""
    ports: set[int] = set()
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[0] == "sl" or ":" not in fields[2]:
            continue
        if fields[3] == ESTABLISHED:
            ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def amqp_connected(port: int, proc_files: Iterable[str] = PROC_FILES) -> bool:
    """Whether a connection to ``port`` is established in this network namespace."""
    for path in proc_files:
        try:
            with open(path, encoding="ascii") as table:
                if port in established_remote_ports(table):
                    return True
        except FileNotFoundError:
            continue
    return False


def http_ok(url: str, timeout: float = 3.0) -> bool:
    """Whether ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status) == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    """Run the probe named by ``argv``; 0 when healthy, 1 when not, 2 on bad usage."""
    if len(argv) == 2 and argv[0] == "http":
        ok = http_ok(argv[1])
        target = argv[1]
    elif len(argv) == 1 and argv[0] == "amqp":
        port = broker_port(os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL))
        ok = amqp_connected(port)
        target = f"an established AMQP connection to port {port}"
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if not ok:
        print(f"unhealthy: no {target}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
