"""The background process of ``palette up``: owns the dev stack and the services.

It starts the one-machine stack (SecantusDB, SeaweedFS for S3, the Bedrock
emulator) with its data in the state dir, then the four services, each its own
process, writes ``run.json`` once all of them answer, restarts a service that
dies, and on SIGTERM or SIGINT stops the services and then the stack
(SIGTERM, then SIGKILL for what is left after a wait) and removes ``run.json``.
It holds an exclusive lock on ``<state dir>/supervisor.lock`` while it runs, so
a second one for the same state dir refuses to start.

Run as ``python -m palette.cli.supervisor`` by ``palette up``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog

from palette.cli.state import ProcessRecord, RunRecord, StateDir
from palette.common.logging import configure_logging
from palette.devstack import readiness
from palette.devstack.objectstore import SEAWEEDFS
from palette.devstack.processes import ProcessFailedError, free_port
from palette.devstack.services import ServiceGroup, start_services
from palette.devstack.stack import DevStack

log = structlog.get_logger("palette.cli.supervisor")
CHECK_SECONDS = 1.0
BROKER_ATTEMPTS = 4


def parser() -> argparse.ArgumentParser:
    """The supervisor's arguments (``palette up`` passes them)."""
    p = argparse.ArgumentParser(prog="palette-supervisor", description=__doc__)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--port", type=int, required=True, help="The gateway's port.")
    p.add_argument("--generators", type=int, default=2)
    p.add_argument("--rabbitmq-url", required=True)
    p.add_argument("--emulator-latency-ms", type=float, default=150.0)
    return p


def service_overrides(generators: int) -> dict[str, dict[str, str]]:
    """A metrics port for every service process (each needs its own)."""
    overrides = {
        name: {f"PALETTE_{name.upper()}_METRICS_PORT": str(free_port())}
        for name in ("gateway", "scheduler", "accounting")
    }
    for i in range(generators):
        overrides[f"generator-{i}"] = {"PALETTE_GENERATOR_METRICS_PORT": str(free_port())}
    return overrides


def run_record(
    stack: DevStack, services: ServiceGroup, overrides: dict[str, dict[str, str]], pid: int
) -> RunRecord:
    """What runs now, for ``run.json``."""
    records = []
    for child, url in (
        (stack.database, stack.mongo_url),
        (stack.s3, stack.s3_endpoint_url),
        (stack.emulator, stack.bedrock_endpoint_url),
    ):
        if child is not None and child.pid is not None:
            records.append(ProcessRecord.of(child.name, child.pid, child.log_path, url))
    for service in services:
        port = next(iter(overrides.get(service.name, {}).values()), None)
        metrics = f"http://127.0.0.1:{port}/metrics" if port else None
        if service.pid is not None:
            records.append(ProcessRecord.of(service.name, service.pid, service.log_path, metrics))
    return RunRecord(
        supervisor=ProcessRecord.of("supervisor", pid, Path(stack.log_dir) / "supervisor.log"),
        gateway_url=services.gateway_url,
        rabbitmq_url=stack.rabbitmq_url,
        emulator_control_url=stack.emulator_control_url,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        processes=records,
    )


def wait_for_broker(url: str, attempts: int = BROKER_ATTEMPTS) -> None:
    """Log in to the broker, trying again while it does not answer (a busy one can take a while).

    Raises:
        ConnectionError: it never answered (the last attempt's reason).
    """
    for attempt in range(1, attempts + 1):
        try:
            readiness.check_rabbitmq(url, timeout=60.0)
            return
        except ConnectionError as exc:
            if attempt == attempts:
                raise
            log.warning("broker_not_answering", attempt=attempt, error=str(exc))


def supervise(args: argparse.Namespace, stop: threading.Event) -> int:
    """Start everything, keep the services running until ``stop``, then stop everything."""
    state = StateDir(args.state_dir)
    state.failure_file.unlink(missing_ok=True)
    if not state.lock():
        state.failure_file.write_text(
            f"another palette up already runs from {state.path}", encoding="utf-8"
        )
        return 1
    stack = DevStack(
        state.path,
        rabbitmq_url=args.rabbitmq_url,
        emulator_options={"latency_ms": args.emulator_latency_ms},
        object_store=SEAWEEDFS,
        start_timeout=120.0,
        check_rabbitmq=False,  # checked below, with more patience for a busy broker
    )
    services: ServiceGroup | None = None
    try:
        wait_for_broker(args.rabbitmq_url)
        stack.start()
        log.info("stack_started", mongo=stack.mongo_url, s3=stack.s3_endpoint_url)
        env = stack.env() | {
            "PALETTE_GATEWAY_PORT": str(args.port),
            "PALETTE_GATEWAY_JWT_SECRET": state.jwt_secret(),
        }
        overrides = service_overrides(args.generators)
        services = start_services(
            env, args.generators, log_dir=state.log_dir, overrides=overrides, timeout=180.0
        )
        record = run_record(stack, services, overrides, os.getpid())
        state.write_run(record)
        log.info("ready", gateway=services.gateway_url)
        while not stop.wait(CHECK_SECONDS):
            for service in services:
                if not service.alive() and not stop.is_set():
                    log.warning("service_died", service=service.name, status=service.wait(0))
                    service.restart(wait=True)
                    state.write_run(run_record(stack, services, overrides, os.getpid()))
                    log.info("service_restarted", service=service.name, pid=service.pid)
        return 0
    except (ProcessFailedError, ConnectionError) as exc:
        log.error("start_failed", error=str(exc))
        state.failure_file.write_text(str(exc), encoding="utf-8")
        return 1
    finally:
        state.clear_run()
        if services is not None:
            services.stop()
        stack.stop()
        log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    """``python -m palette.cli.supervisor``."""
    args = parser().parse_args(argv)
    configure_logging("supervisor")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.exit(supervise(args, stop))


if __name__ == "__main__":
    main()
