"""``make test-image``: build the Dockerfile's image and run every service from it, for real.

1. Engine: Docker if an engine answers, else podman (installed with
   ``tools/image/install-podman.sh`` where missing; ``--no-install`` forbids it).
   With neither it says what it tried and why each failed, and exits 2.
2. Base images: the Dockerfile's defaults if they can be pulled, else made here
   (``tools/image/base-images.sh``: debootstrap + this machine's CPython 3.12, uv,
   and Node.js with npm for the stage that builds the web page).
3. Build (the host's CA bundle passed as a build secret to the uv and npm steps,
   never in a layer), then the image's size and user.
4. Run: a virtual host of its own on this machine's RabbitMQ, the dev stack
   (``palette-devstack up``), and each service's command in its own container as
   the image's non-root user on the host network. Checks: the gateway's
   ``/health`` and ``/ready``; the web page the ``ui`` stage built, served at ``/ui``
   with its assets; each worker consuming all its queues and serving metrics; every
   main process's uid; one job end to end through the REST API.
5. Report: what passed, the image's size and the time each part took.

Usage: ``python -m tools.image [--no-install] [--rebuild-base] [--own-broker]``. The image is kept
(``localhost/plot-palette:test-image``), and so are the base images made here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tools.image import build as b
from tools.image import run as r
from tools.image.engine import NoEngineError, find_engine

from palette.devstack.client import GatewayClient
from palette.gateway.bearer_tokens import mint

ROOT = b.ROOT
EXAMPLES = ROOT / "examples"
IMAGE = "localhost/plot-palette:test-image"
RECORDS = 12


class Report:
    """Timed lines of the run, and the closing summary."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.facts: dict[str, str] = {}

    def step(self, text: str) -> float:
        """Print a step with the time since the start; return now."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)
        return time.monotonic()

    def done(self, key: str, value: str) -> None:
        """Record a fact for the summary and print it."""
        self.facts[key] = value
        print(f"          {key}: {value}", flush=True)

    def summary(self, ok: bool) -> str:
        """The closing lines."""
        total = time.monotonic() - self.started
        head = "make test-image: " + ("passed" if ok else "FAILED") + f" in {total:.0f} s"
        return "\n".join([head, *(f"  {k:<10} {v}" for k, v in self.facts.items())])


def _uv() -> Path:
    found = os.environ.get("UV") or shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    return Path(found)


def _node() -> Path | None:
    found = shutil.which("node")
    return Path(found) if found else None


def _check_services(report: Report, containers: r.Containers, broker: r.Broker, base: str) -> None:
    r.wait_http_ok(f"{base}/health", 120)
    r.wait_http_ok(f"{base}/ready", 120)
    report.done("gateway", f"{base}/health 200, /ready 200")
    report.done("page", r.check_page(base))
    queues = 0
    for service in r.SERVICES[1:]:
        queues += len(r.wait_consuming(broker, service, 120))
    workers = ", ".join(r.SERVICES[1:])
    report.done("workers", f"{workers}: a consumer on each of their {queues} queues")
    for port in containers.metrics.values():
        r.wait_http_ok(f"http://127.0.0.1:{port}/metrics", 60)
    report.done("metrics", "every service serves /metrics on its PALETTE_<SERVICE>_METRICS_PORT")
    uids = {s: containers.uid(s) for s in r.SERVICES}
    wrong = {s: u for s, u in uids.items() if set(u.split()) != {"10001"}}
    if wrong:
        raise RuntimeError(f"services not running as uid 10001: {wrong}")
    report.done("user", "every service's main process runs as uid 10001 (real, effective, saved)")


def _run_job(report: Report, base: str, secret: str) -> None:
    api = GatewayClient(base, mint("image-test", secret))
    try:
        template = api.create_template(json.loads((EXAMPLES / "template.json").read_text()))
        seeds = api.upload_seeds(EXAMPLES / "seeds.jsonl")
        job = api.submit_job(
            template_id=template["id"],
            seed_key=seeds["key"],
            num_records=RECORDS,
            budget_usd="1.00",
            output_format="jsonl",
        )
        started = time.monotonic()
        final: dict[str, Any] = api.wait(job["id"], timeout=300)
        if final["status"] != "COMPLETED":
            raise RuntimeError(f"job {job['id']} ended {final['status']}: {final}")
        link = api.http.get(f"/jobs/{job['id']}/download")
        link.raise_for_status()
        lines = httpx.get(link.json()["url"], timeout=30).text.splitlines()
    finally:
        api.close()
    if len(lines) != RECORDS:
        raise RuntimeError(f"the dataset has {len(lines)} lines, {RECORDS} expected")
    report.done(
        "job",
        f"{job['id']} COMPLETED through the REST API in {time.monotonic() - started:.1f} s: "
        f"{len(lines)} records downloaded, cost ${final['cost_usd']} of ${final['budget_usd']}",
    )


def _run(report: Report, engine: Any, work: Path, *, own_broker: bool) -> None:
    run_id = uuid.uuid4().hex[:8]
    secret = r.new_secret()
    if own_broker:
        broker_cm = r.own_broker(work / "rabbitmq")
    else:
        base_url = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
        broker_cm = r.machine_broker(base_url, f"palette-image-{run_id}")
    with broker_cm as broker, r.devstack(work / "devstack", broker.url) as env_file:
        where = "a RabbitMQ node of its own" if own_broker else f"vhost {broker.vhost}"
        report.step(f"dev stack up (env {env_file}); broker: {where}; starting the services")
        containers = r.Containers(engine, IMAGE, env_file, run_id)
        port = r.free_port()
        try:
            for service in r.SERVICES:
                containers.start(service, r.service_env(service, port, secret))
            _check_services(report, containers, broker, f"http://127.0.0.1:{port}")
            report.step("one job end to end through the gateway's REST API")
            _run_job(report, f"http://127.0.0.1:{port}", secret)
        except Exception:
            for service in containers.names:
                print(f"--- {service} (running: {containers.running(service)}), last lines:")
                print(containers.logs(service))
            raise
        finally:
            containers.remove_all()
    gone = "node stopped" if own_broker else f"vhost {broker.vhost} deleted"
    report.done("cleanup", f"containers removed, dev stack stopped, {gone}")


def main(argv: list[str] | None = None) -> int:
    """Build and run the image; 0 when every check passed, 1 on a failure, 2 without an engine."""
    parser = argparse.ArgumentParser(prog="make test-image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true", help="never install podman")
    parser.add_argument("--rebuild-base", action="store_true", help="make the base images anew")
    parser.add_argument(
        "--own-broker",
        action="store_true",
        help="run the services on a RabbitMQ node of this run's own, not the machine's",
    )
    parser.add_argument("--pull-timeout", type=float, default=60, help="seconds per base pull")
    args = parser.parse_args(argv)
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="palette-image-"))
    work.chmod(0o755)  # --own-broker's node runs as the rabbitmq user and keeps its data here
    report.step("finding a container engine")
    try:
        engine = find_engine(work, install=not args.no_install)
    except NoEngineError as exc:
        print("make test-image: could not build or run the image: no container engine.")
        for reason in exc.reasons:
            print(f"  - {reason}")
        print(
            "  Not done: the build, the size, the services' runs and the job. Install Docker "
            "(with its engine running) or podman, runc and debootstrap, then run it again."
        )
        shutil.rmtree(work, ignore_errors=True)
        return 2
    ok = False
    try:
        report.done("engine", engine.version() + (" (runc)" if engine.name == "podman" else ""))
        report.step("base images")
        bases = b.base_images(
            engine, _uv(), _node(), rebuild=args.rebuild_base, pull_timeout=args.pull_timeout
        )
        report.done("bases", f"{bases.python}, {bases.uv}, {bases.node}: {bases.how}")
        started = report.step(f"building {IMAGE} (log {work / 'build.log'})")
        b.build(engine, IMAGE, bases, work / "build.log")
        size, user = b.image_facts(engine, IMAGE)
        report.done("build", f"{time.monotonic() - started:.0f} s")
        report.done("image", f"{IMAGE}: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB), user {user}")
        if user.split(":")[0] != "10001":
            raise RuntimeError(f"the image's user is {user!r}, not 10001")
        report.step("running the services from the image")
        _run(report, engine, work, own_broker=args.own_broker)
        ok = True
    except Exception as exc:  # reported; the exit code says it failed
        print(f"make test-image: {type(exc).__name__}: {exc}", file=sys.stderr)
        report.done("logs", f"kept in {work} (build.log, devstack/, rabbitmq/)")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    print(report.summary(ok))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
