"""``make demo``: one real two-step job, end to end, on the one-machine stack.

Starts the dev stack (SecantusDB, moto S3, the Bedrock emulator) and the four
services as separate processes, uploads ``examples/seeds.jsonl``, creates the
template in ``examples/template.json``, submits a job through the REST API,
shows its progress and prints where the dataset is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from palette.devstack.client import GatewayClient
from palette.devstack.services import start_services
from palette.devstack.stack import DEFAULT_RABBITMQ_URL, DevStack

ROOT = Path(__file__).resolve().parents[5]
EXAMPLES = ROOT / "examples"


def _listening(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


def ensure_rabbitmq(url: str) -> None:
    """Make sure a broker listens at ``url``: start a local one, or docker compose's."""
    if _listening(url):
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
        if _listening(url):
            time.sleep(2)  # the listener opens before the broker accepts logins
            return
        time.sleep(1)
    sys.exit(f"RabbitMQ did not start listening at {url} within 60 s.")


def _bar(job: dict[str, Any], width: int = 30) -> str:
    done, total = job["records_done"], job["num_records"]
    filled = int(width * done / total) if total else width
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} records  "
        f"cost ${job['cost_usd']} of ${job['budget_usd']}  {job['status']:<16}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the demo job and print where its dataset is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--budget", default="0.50", help="budget in USD")
    parser.add_argument("--format", default="parquet", choices=["jsonl", "parquet", "csv"])
    parser.add_argument("--latency-ms", type=int, default=150, help="emulated model latency")
    args = parser.parse_args(argv)

    rabbitmq_url = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    ensure_rabbitmq(rabbitmq_url)
    from palette.gateway.settings import GatewaySettings
    from palette.gateway.tokens import mint

    state = ROOT / ".devstack" / "demo"
    shutil.rmtree(state, ignore_errors=True)
    print("Starting the dev stack (SecantusDB, S3, Bedrock emulator) ...")
    with DevStack(
        state, rabbitmq_url=rabbitmq_url, emulator_options={"latency_ms": args.latency_ms}
    ) as stack:
        print("Starting gateway, scheduler, accounting and two generators ...")
        with start_services(stack.env(), generators=2, log_dir=state / "services") as services:
            secret = GatewaySettings().jwt_secret.get_secret_value()
            api = GatewayClient(services.gateway_url, mint("demo-user", secret))
            template = api.create_template(json.loads((EXAMPLES / "template.json").read_text()))
            seeds = api.upload_seeds(EXAMPLES / "seeds.jsonl")
            print(
                f"Template {template['id']} ({len(template['steps'])} steps), "
                f"{seeds['records']} seed records at s3://{stack.bucket}/{seeds['key']}"
            )
            job = api.submit_job(
                template_id=template["id"],
                seed_key=seeds["key"],
                num_records=args.records,
                budget_usd=args.budget,
                output_format=args.format,
            )
            print(f"Job {job['id']}: {args.records} records, budget ${args.budget}")
            final = api.wait(
                job["id"], timeout=600, on_progress=lambda j: print(_bar(j), end="", flush=True)
            )
            print()
            export = final.get("export") or {}
            print(f"Status:   {final['status']}")
            print(
                f"Dataset:  s3://{stack.bucket}/{export.get('key')}  ({export.get('bytes')} bytes)"
            )
            print(f"Records:  {export.get('records')}")
            print(f"Cost:     ${final['cost_usd']} (budget ${final['budget_usd']})")
            print(f"Logs:     {state / 'services'}")
            api.close()
            return 0 if final["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
