"""Check an image's virtual environment: every service loads, builds and writes its formats.

Run by the Dockerfile right after the environment is slimmed (so an image whose
slimming removed something a service needs fails to build), and by
``tests/deploy/test_image.py`` on an environment built the same way here.
Nothing connects anywhere: apps are built, not started; AWS clients are
created (which loads their botocore models), not called.

Usage: ``python deploy/docker/smoke.py`` with the environment's interpreter.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
from importlib.metadata import entry_points

SERVICES = ("gateway", "scheduler", "generator", "accounting")
# botocore service models the services load: S3, Bedrock, and STS for IRSA web identity.
AWS_SERVICES = ("s3", "bedrock-runtime", "sts")


def check_commands() -> None:
    """Every service runs as ``python -m palette.<service>`` and as its console script."""
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    for service in SERVICES:
        importlib.import_module(f"palette.{service}.__main__")
        scripts[f"palette-{service}"].load()


def check_apps() -> None:
    """Each service's app builds with its settings (no connection is made)."""
    from palette.accounting.app import create_app as accounting_app
    from palette.gateway.app import create_app as gateway_app
    from palette.generator.app import create_app as generator_app
    from palette.generator.settings import GeneratorSettings
    from palette.scheduler.app import create_app as scheduler_app

    gateway_app()
    scheduler_app()
    accounting_app()
    generator_app(GeneratorSettings())


def check_aws_clients() -> None:
    """The botocore models the services and IRSA need are in the environment."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="smoke",
        aws_secret_access_key="smoke",  # noqa: S106 - no call is made
        region_name="us-east-1",
    )
    for name in AWS_SERVICES:
        session.client(name)  # type: ignore[call-overload]


def check_exports() -> None:
    """JSONL, CSV and Parquet datasets are written and Parquet reads back."""
    import pyarrow.parquet as pq

    from palette.common.messages import OutputFormat
    from palette.common.templates import Step
    from palette.generator.format_writers import ColumnPlan, make_writer
    from palette.generator.records import FinishedRecord

    plan = ColumnPlan([Step(id="a", model="m", prompt="{{ x }}")])
    record = FinishedRecord(
        index=0, seed_index=0, outputs={"a": "text"}, models={"a": "m"}, usage={"a": (1, 2)}
    )
    for fmt in OutputFormat:
        sink = io.BytesIO()
        writer = make_writer(fmt, sink, plan, batch_rows=10)
        writer.write(plan.row("job", record))
        writer.close()
        assert sink.getvalue(), fmt
        if fmt is OutputFormat.PARQUET:
            sink.seek(0)
            assert pq.read_table(sink, use_threads=False).num_rows == 1


# What the Dockerfile's python-runtime stage removes from the base image.
REMOVED_FROM_BASE = frozenset(
    {"pip", "setuptools", "pkg_resources", "wheel", "ensurepip", "idlelib", "tkinter"}
    | {"_tkinter", "lib2to3", "turtledemo", "pydoc_data"}
)


def check_removed_modules_unused() -> None:
    """Nothing the checks above loaded is among what the runtime image leaves out."""
    loaded = {name.split(".")[0] for name in sys.modules}
    assert not loaded & REMOVED_FROM_BASE, sorted(loaded & REMOVED_FROM_BASE)


def main() -> None:
    """Run every check; raise on the first failure."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    check_commands()
    check_apps()
    check_aws_clients()
    check_exports()
    check_removed_modules_unused()
    print("smoke: ok")


if __name__ == "__main__":
    main()
    # Every check has passed. Leave without the interpreter's finalization: Arrow's native
    # thread pools, torn down there, now and then abort the process after its work is done
    # ("terminate called without an active exception", exit -6; apache/arrow#34314), which
    # failed this check once in CI after "smoke: ok". What is checked is that the services
    # load and write, not how a C++ library's statics end.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
