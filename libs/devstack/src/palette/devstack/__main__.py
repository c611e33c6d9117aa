"""``palette-devstack up``: run the dev stack in the foreground until SIGTERM/SIGINT.

The environment for the services is written to ``<state-dir>/env`` as
``KEY=VALUE`` lines (``set -a; . .devstack/env; set +a`` loads it in a shell)
and printed. The stack stops, and the command exits 1, if a server dies.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from palette.devstack.processes import ProcessFailedError
from palette.devstack.stack import DevStack


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="palette-devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="Run SecantusDB, moto S3 and the Bedrock emulator.")
    up.add_argument("--state-dir", type=Path, default=Path(".devstack"), help="Data and logs.")
    up.add_argument("--bucket", default="plot-palette", help="S3 bucket to create.")
    up.add_argument("--mongo-db", default="palette", help="Database name for the services.")
    up.add_argument("--rabbitmq-url", help="Broker URL (default: $RABBITMQ_URL or local).")
    up.add_argument("--no-rabbitmq-check", action="store_true", help="Do not check the broker.")
    up.add_argument("--pricing-file", help="Pricing table for the emulator and services.")
    up.add_argument("--latency-ms", type=float, default=0.0, help="Emulator latency per call.")
    up.add_argument("--jitter-ms", type=float, default=0.0, help="Emulator latency jitter.")
    up.add_argument("--seed", type=int, help="Seed of the emulator's fault generator.")
    return parser


def write_env(path: Path, env: dict[str, str]) -> None:
    """Write ``KEY=VALUE`` lines atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text("".join(f"{key}={value}\n" for key, value in env.items()), encoding="utf-8")
    temp.replace(path)


def up(args: argparse.Namespace) -> int:
    """Start the stack, write its env file, wait for a signal or a dead server."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    options: dict[str, float | int] = {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms}
    if args.seed is not None:
        options["seed"] = args.seed
    stack = DevStack(
        args.state_dir,
        bucket=args.bucket,
        mongo_db=args.mongo_db,
        rabbitmq_url=args.rabbitmq_url,
        check_rabbitmq=not args.no_rabbitmq_check,
        emulator_options=options,
        pricing_file=args.pricing_file,
    )
    env_file = args.state_dir / "env"
    try:
        stack.start()
    except (ProcessFailedError, ConnectionError) as exc:
        print(f"palette-devstack: {exc}", file=sys.stderr)
        return 1
    status = 0
    try:
        write_env(env_file, stack.env())
        print(env_file.read_text(encoding="utf-8"), end="", flush=True)
        print(f"palette-devstack: ready; env in {env_file}", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            dead = [name for name, alive in stack.alive().items() if not alive]
            if dead:
                print(f"palette-devstack: {', '.join(dead)} died", file=sys.stderr)
                status = 1
                break
    finally:
        env_file.unlink(missing_ok=True)
        stack.stop()
    return status


def main(argv: list[str] | None = None) -> None:
    """Console script ``palette-devstack``."""
    args = _parser().parse_args(argv)
    sys.exit(up(args))


if __name__ == "__main__":
    main()
