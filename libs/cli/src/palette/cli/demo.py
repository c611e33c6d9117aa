"""``make demo``: one real two-step job on the one-machine system, ending on local disk.

The same pieces as ``palette up`` and ``palette run``: the system starts in
``.devstack/demo`` (fresh each time), the job made from ``examples/`` runs
with the live view, its dataset and dataset card land in ``out/demo/``, and
the system stops again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from decimal import Decimal
from pathlib import Path

from palette.cli import local
from palette.cli.api import Api, ApiError
from palette.cli.config import Connection, mint_local
from palette.cli.output import console
from palette.cli.runjob import RunError, RunRequest, run
from palette.cli.state import StateDir

ROOT = Path(__file__).resolve().parents[5]
EXAMPLES = ROOT / "examples"


def main(argv: list[str] | None = None) -> int:
    """Run the demo job; the exit status of ``palette run``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--budget", type=Decimal, default=Decimal("0.50"), help="USD")
    parser.add_argument("--format", default="parquet", choices=["jsonl", "parquet", "csv"])
    parser.add_argument("--latency-ms", type=float, default=150.0, help="emulated model latency")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".devstack" / "demo")
    args = parser.parse_args(argv)

    state = StateDir(args.state_dir)
    local.down(state)
    shutil.rmtree(state.path, ignore_errors=True)
    console.print(
        "Starting the one-machine system (SecantusDB, SeaweedFS, the Bedrock "
        "emulator, gateway, scheduler, accounting, two generators) ..."
    )
    try:
        record = local.up(state, port=0, emulator_latency_ms=args.latency_ms).record
    except local.LocalError as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    console.print(
        f"REST API {record.gateway_url} (docs {record.docs_url}); logs in {state.log_dir}"
    )
    try:
        with Api(Connection(record.gateway_url, mint_local(state, sub="demo-user"))) as api:
            status = run(
                api,
                RunRequest(
                    str(EXAMPLES / "template.json"),
                    str(EXAMPLES / "seeds.jsonl"),
                    args.records,
                    args.budget,
                    args.format,
                    args.out,
                    yes=True,
                ),
                console,
            )
    except (ApiError, RunError) as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    finally:
        local.down(state)
    dataset = args.out / f"dataset.{args.format}"
    if args.format == "parquet":
        console.print("\nOpen it with pyarrow:", soft_wrap=True)
        console.print(
            f'.venv/bin/python -c "import pyarrow.parquet as pq; '
            f"print(pq.read_table('{dataset}').slice(0, 3).to_pylist())\"",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
