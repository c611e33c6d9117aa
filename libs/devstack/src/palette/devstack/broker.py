"""Making sure a RabbitMQ broker listens: the one machine's, or docker compose's."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[5]


def listening(url: str) -> bool:
    """Whether something accepts TCP connections at the broker URL's host and port."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


def ensure_rabbitmq(url: str) -> None:
    """Make sure a broker listens at ``url``: start a local one, or docker compose's."""
    if listening(url):
        return
    server, docker = shutil.which("rabbitmq-server"), shutil.which("docker")
    if server:
        print("RabbitMQ is not running; starting the local rabbitmq-server ...")
        subprocess.run([server, "-detached"], check=False)
    elif (
        docker
        and subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0
    ):
        print("RabbitMQ is not running; starting it with docker compose ...")
        subprocess.run([docker, "compose", "up", "-d", "rabbitmq"], cwd=ROOT, check=True)
    else:
        sys.exit(
            f"No RabbitMQ at {url}: install rabbitmq-server (apt-get install rabbitmq-server) "
            "or Docker, or set RABBITMQ_URL to a running broker."
        )
    for _ in range(60):
        if listening(url):
            time.sleep(2)  # the listener opens before the broker accepts logins
            return
        time.sleep(1)
    sys.exit(f"RabbitMQ did not start listening at {url} within 60 s.")
