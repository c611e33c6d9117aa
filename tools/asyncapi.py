"""Write the AsyncAPI documents of Plot Palette's messages into ``docs/asyncapi/``.

FastStream generates them from the services' own apps, so they show the queues
each service really consumes and the message schemas of ``palette.common``:

* ``<service>.yaml`` for the scheduler, accounting and generator: what it consumes.
* ``palette.yaml``: the whole system. Those three brokers plus every route of
  ``palette.common.topology.ROUTES`` as a publication (exchange, routing key,
  message), so the commands another system may publish (``SubmitJob``,
  ``CancelJob``) and the notifications it may listen to (``JobStatusChanged``)
  are there too.

Usage: ``uv run python -m tools.asyncapi`` (``make docs``) rewrites the files;
``tests/deploy/test_docs.py`` fails when the committed ones are not current.
Nothing connects to a broker: apps are built, not started.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from faststream.rabbit import RabbitBroker
from faststream.specification import AsyncAPI

from palette.common.topology import NOTIFICATIONS, ROUTES

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "docs" / "asyncapi"
# The documents name this server; the credentials part never appears in them.
DOC_BROKER_URL = "amqp://guest:guest@rabbitmq:5672/"
VERSION = "0.1.0"
SCHEMA_VERSION = "3.0.0"
# A generator's broadcast queue is named per process (a random suffix).
_PER_PROCESS_QUEUE = re.compile(r"generator\.job-stopped\.[0-9a-f]{32}")

DESCRIPTION = (
    "Plot Palette's messages on RabbitMQ. Commands go to the direct exchange "
    "`palette.commands`, events to the topic exchange `palette.events`, `JobStopped` "
    "to the fanout exchange `palette.broadcast`. Every consumer queue is a durable "
    "quorum queue with a delivery limit and a dead-letter queue `<queue>.dlq` behind "
    "`palette.dlx`. Messages are JSON (`content_type: application/json`), persistent, "
    "published with confirms and (but for notifications) mandatory; `message_id` is "
    "the idempotency key. See docs/publishing-commands.md."
)


def service_brokers() -> dict[str, RabbitBroker]:
    """The broker of each message-driven service, built from its app factory."""
    from palette.accounting.app import create_app as accounting_app
    from palette.accounting.settings import AccountingSettings
    from palette.generator.app import create_app as generator_app
    from palette.generator.settings import GeneratorSettings
    from palette.scheduler.app import create_app as scheduler_app
    from palette.scheduler.settings import SchedulerSettings

    apps = {
        "scheduler": scheduler_app(SchedulerSettings(rabbitmq_url=DOC_BROKER_URL)),
        "accounting": accounting_app(AccountingSettings(rabbitmq_url=DOC_BROKER_URL)),
        "generator": generator_app(GeneratorSettings(rabbitmq_url=DOC_BROKER_URL)),
    }
    brokers = {}
    for name, app in apps.items():
        broker = app.broker
        assert isinstance(broker, RabbitBroker), name
        brokers[name] = broker
    return brokers


def routes_broker() -> RabbitBroker:
    """A broker that only documents: one publication per route of the topology."""
    broker = RabbitBroker(DOC_BROKER_URL)
    for message, (exchange, routing_key) in ROUTES.items():
        notification = message in NOTIFICATIONS
        broker.publisher(
            routing_key,
            exchange=exchange,
            schema=message,
            title=f"{exchange.name}:{routing_key or '(fanout)'}:{message.__name__}",
            description=(message.__doc__ or "").strip(),
            persist=True,
            mandatory=not notification,
            content_type="application/json",
            message_type=message.__name__,
        )
    return broker


def render(brokers: Iterable[RabbitBroker], title: str, description: str) -> str:
    """The YAML AsyncAPI document of ``brokers``."""
    spec = AsyncAPI(
        *brokers,
        title=title,
        version=VERSION,
        description=description,
        schema_version=SCHEMA_VERSION,
    ).to_specification()
    text = _PER_PROCESS_QUEUE.sub("generator.job-stopped.{process}", spec.to_yaml())
    return _stable(text)


def _stable(text: str) -> str:
    """The document with its channels, operations and components in name order.

    FastStream lists them in an order that varies between runs; sorted, the
    committed files change only when the messages do.
    """
    import yaml

    doc = yaml.safe_load(text)
    for key in ("channels", "operations"):
        if key in doc:
            doc[key] = dict(sorted(doc[key].items()))
    for key, value in doc.get("components", {}).items():
        if isinstance(value, dict):
            doc["components"][key] = dict(sorted(value.items()))
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def documents() -> dict[str, str]:
    """File name -> text of every document."""
    brokers = service_brokers()
    docs = {
        f"{name}.yaml": render(
            [broker], f"Plot Palette {name}", f"What the {name} consumes. {DESCRIPTION}"
        )
        for name, broker in brokers.items()
    }
    docs["palette.yaml"] = render([routes_broker(), *brokers.values()], "Plot Palette", DESCRIPTION)
    return docs


def normalized(text: str) -> Any:
    """A document as data, for comparisons that ignore key order."""
    import yaml

    return yaml.safe_load(text)


def main(argv: list[str]) -> int:
    """Write every document into ``docs/asyncapi/`` (or into the folder given)."""
    out = Path(argv[0]) if argv else OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, text in documents().items():
        (out / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
