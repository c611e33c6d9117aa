"""When no generator answers: previews and snapshots give up with a 503, deletes wait (409).

The session's generators are killed for the duration of a test (and started
again after it), so nothing consumes the generator queues: a ``preview?run=true``
or a partial export asked of the tight gateway (two-second waits) gets no
answer, and a cancelled job cannot settle its partitions, so it stays ended
with its export still to come. Everything is real: gateways, broker, database,
S3 and the scheduler and accounting processes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from palette.common.messages import DeleteJob
from palette.common.topology import ROUTES, Queues
from palette.devstack.services import ServiceGroup
from palette.devstack.stack import DevStack
from tests.integration.deliveries import consumed, mark, wait_consumed, wait_drained
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import ONE_STEP, model_latency, problem, publish_to, start
from tests.integration.waiting import (
    wait_job_deleted,
    wait_job_objects_gone,
    wait_records_done,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT_SECONDS = 2.0  # TIGHT_SETTINGS: snapshot and preview timeouts
SEED = {"product": "a kettle"}


class Generators:
    """Stops and starts the session's generator processes."""

    def __init__(self, services: ServiceGroup) -> None:
        self.services = services

    def kill(self) -> None:
        for generator in self.services.generators:
            generator.kill()

    def start(self) -> None:
        """Start the stopped ones together, then wait until each is ready."""
        stopped = [g for g in self.services.generators if not g.alive()]
        for generator in stopped:
            generator.start()
        for generator in stopped:
            generator.wait_ready(60)


@pytest.fixture
def generators(services: ServiceGroup) -> Iterator[Generators]:
    """The generators, running again after the test whatever it did to them."""
    control = Generators(services)
    try:
        yield control
    finally:
        control.start()


def timed(call: Any) -> tuple[Any, float]:
    began = time.monotonic()
    answer = call()
    return answer, time.monotonic() - began


class TestPreviewRun:
    def test_no_answer_in_time_is_a_503_and_the_late_request_calls_no_model(
        self, make_api: MakeApi, make_tight_api: MakeApi, generators: Generators, devstack: DevStack
    ) -> None:
        user, api = make_api()
        _, tight = make_tight_api(user)
        template = api.create_template(ONE_STEP)
        generators.kill()
        response, took = timed(
            lambda: tight.http.post(
                f"/templates/{template['id']}/preview", params={"run": "true"}, json={"seed": SEED}
            )
        )
        found = problem(response, 503)
        assert f"no generator answered the preview within {WAIT_SECONDS:g} s" in found["detail"]
        assert response.headers["retry-after"] == "5"
        assert WAIT_SECONDS <= took < WAIT_SECONDS + 3
        since = mark(generators.services.generators)  # from their start on
        generators.start()
        # Served again: the same preview now runs through the model. Queued behind the
        # expired request, it is the sentinel: once it is answered, the broker has
        # passed the expired one, which no generator received.
        ran = api.http.post(
            f"/templates/{template['id']}/preview", params={"run": "true"}, json={"seed": SEED}
        )
        assert ran.status_code == 200, ran.text
        received = wait_drained(since, Queues.PREVIEW_RECORD.name)
        assert len(received) == 1, received  # one request id: the sentinel's
        assert len(devstack.emulator_control().billing(owner=user)) == 1


@pytest.mark.long
class TestRunningJobWithoutGenerators:
    def test_snapshot_is_a_503_and_deleting_the_cancelled_job_is_a_409_until_it_exported(
        self,
        make_api: MakeApi,
        make_tight_api: MakeApi,
        generators: Generators,
        services: ServiceGroup,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        user, api = make_api()
        _, tight = make_tight_api(user)
        with model_latency(devstack, 40):
            _, _, job = start(api, num_records=3000, budget_usd="5")
            job_id = job["id"]
            wait_records_done(api, job_id, 10)
            generators.kill()
        prefix = f"jobs/{job_id}/"
        objects_before = s3.list_objects_v2(Bucket=devstack.bucket, Prefix=prefix)["KeyCount"]
        assert objects_before > 0

        response, took = timed(
            lambda: tight.http.get(f"/jobs/{job_id}/download", params={"format": "csv"})
        )
        found = problem(response, 503)
        assert "partial export is still being written" in found["detail"]
        assert response.headers["retry-after"] == "5"
        assert WAIT_SECONDS <= took < WAIT_SECONDS + 3

        assert api.http.delete(f"/jobs/{job_id}").status_code == 202  # running: cancelled
        wait_until(lambda: api.job(job_id)["status"] == "CANCELLED", what="the job to be cancelled")
        since = mark([services.scheduler])
        for client in (api, tight):
            refused = client.http.delete(f"/jobs/{job_id}")
            busy = problem(refused, 409)
            assert busy["errors"][0]["field"] == "job_id"
            assert "still writing its export" in busy["detail"]
            assert refused.headers["retry-after"] == "2"
        # A sentinel delete (of no job) behind any delete that slipped through: once the
        # scheduler has handled it, it has received every delete sent before it.
        sentinel = DeleteJob(job_id=uuid.uuid4().hex, owner=f"sentinel-{uuid.uuid4().hex[:8]}")
        exchange, routing_key = ROUTES[DeleteJob]
        body = sentinel.model_dump_json().encode()
        url = devstack.rabbitmq_url
        asyncio.run(publish_to(url, exchange.name, routing_key, body, sentinel.message_id))
        queue = Queues.DELETE_JOB.name
        wait_consumed(since, queue, sentinel.message_id)
        assert set(consumed(since, queue, "Received")) == {sentinel.message_id}
        assert api.http.get(f"/jobs/{job_id}").status_code == 200
        assert mongo["jobs"].find_one({"_id": job_id})["export"] is None
        listed = s3.list_objects_v2(Bucket=devstack.bucket, Prefix=prefix)["KeyCount"]
        assert listed >= objects_before

        generators.start()
        final = api.wait(job_id, timeout=90)
        assert final["status"] == "CANCELLED"
        assert 10 <= final["export"]["records"] < 3000
        link = tight.http.get(f"/jobs/{job_id}/download")
        assert link.status_code == 200, link.text
        assert link.json()["partial"] is False
        assert api.http.delete(f"/jobs/{job_id}").status_code == 202  # ended and exported
        wait_job_deleted(api, job_id, timeout=60)
        wait_job_objects_gone(s3, devstack.bucket, job_id)
