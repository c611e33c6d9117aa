"""The message documentation is current and its publishing example is the tested code.

docs/asyncapi/ must be what ``make docs`` writes from the services now, and
docs/publishing-commands.md must show examples/publish_submit_job.py as it is
(tests/integration/test_publishing_example.py runs that file to a completed job).
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from tools.asyncapi import OUT_DIR, documents

from palette.common import messages as m
from palette.common.topology import ROUTES, Queues
from tests.deploy.files import ROOT
from tests.examples import PUBLISHING_EXAMPLE, load_publishing_example

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(120)]

PUBLISHING_DOC = ROOT / "docs" / "publishing-commands.md"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return documents()


class TestAsyncApi:
    def test_committed_documents_are_current(self, generated: dict[str, str]) -> None:
        committed = {p.name for p in OUT_DIR.glob("*.yaml")}
        assert committed == set(generated), "run `make docs`"
        stale = [
            name
            for name, text in generated.items()
            if (OUT_DIR / name).read_text(encoding="utf-8") != text
        ]
        assert not stale, f"stale AsyncAPI documents {stale}: run `make docs`"

    def test_system_document_has_every_queue_and_message(self, generated: dict[str, str]) -> None:
        doc = yaml.safe_load(generated["palette.yaml"])
        assert doc["asyncapi"].startswith("3.")
        queues = {
            c["bindings"]["amqp"]["queue"]["name"]
            for c in doc["channels"].values()
            if c["bindings"]["amqp"]["is"] == "queue"
        }
        assert {spec.name for spec in Queues.all()} <= queues
        schemas = set(doc["components"]["schemas"])
        assert {message.__name__ for message in ROUTES} <= schemas

    def test_submit_job_route_is_documented_as_external_systems_publish_it(
        self, generated: dict[str, str]
    ) -> None:
        doc = yaml.safe_load(generated["palette.yaml"])
        exchange, routing_key = ROUTES[m.SubmitJob]
        [channel] = [
            c
            for c in doc["channels"].values()
            if c.get("address") == routing_key and c["bindings"]["amqp"]["is"] == "routingKey"
        ]
        assert channel["bindings"]["amqp"]["exchange"]["name"] == exchange.name
        assert channel["bindings"]["amqp"]["exchange"]["durable"] is True


class TestPublishingExample:
    def test_document_shows_the_example_file_verbatim(self) -> None:
        text = PUBLISHING_DOC.read_text(encoding="utf-8")
        blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
        assert PUBLISHING_EXAMPLE.read_text(encoding="utf-8") in blocks

    def test_example_publishes_on_the_topologys_route(self) -> None:
        example = load_publishing_example()
        exchange, routing_key = ROUTES[m.SubmitJob]
        assert (exchange.name, routing_key) == (example.EXCHANGE, example.ROUTING_KEY)

    def test_example_body_is_a_valid_submit_job_keyed_by_its_message_id(self) -> None:
        example = load_publishing_example()
        steps = json.loads((ROOT / "examples" / "template.json").read_text())["steps"]
        body = example.submit_job(
            job_id="job-1",
            owner="crm",
            steps=steps,
            seed_key="seed-data/crm/seeds.jsonl",
            num_records=10,
            budget_usd="1.50",
            output_format="csv",
        )
        parsed = m.SubmitJob.model_validate_json(json.dumps(body))
        assert parsed.message_id == body["message_id"] == "submit-job-1"
        assert parsed.output_format is m.OutputFormat.CSV

    def test_example_imports_nothing_of_plot_palette(self) -> None:
        source = PUBLISHING_EXAMPLE.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+palette\b", source, flags=re.MULTILINE)
