"""Watching a job and getting its data: dashboard, server-sent events and downloads."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from palette.devstack.stack import DevStack
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import (
    HAIKU,
    MICRO,
    TWO_STEPS,
    finished_job,
    model_latency,
    problem,
    start,
)
from tests.integration.waiting import wait_records_done, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def usd(picos: int) -> Decimal:
    return Decimal(picos) / 10**12


def sse(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The events of a stream as (event, data), read until the stream ends."""
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif not line and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


class TestDashboard:
    def test_cost_by_model_and_step_budget_tokens_and_timing_match_the_ledger(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        _, api = make_api()
        _, _, job = start(api, num_records=30, template=TWO_STEPS, budget_usd="3")
        final = api.wait(job["id"], timeout=90)
        board = api.http.get(f"/jobs/{job['id']}/dashboard").json()
        ledger = mongo["ledgers"].find_one({"_id": job["id"]})
        assert board["status"] == "COMPLETED"
        assert board["progress"] | {"records_per_second": None} == {
            "done": 30,
            "incomplete": 0,
            "target": 30,
            "percent": 100.0,
            "records_per_second": None,
            "partitions_total": 1,
            "partitions_in_flight": 0,
            "partitions_paused": 0,
            "paused_reason": None,
            "generated": 30,
            "kept": 30,
            "rejected": {},
            "short_of_target": False,
            "short_of_target_reason": None,
        }
        assert board["progress"]["records_per_second"] > 0
        assert Decimal(board["budget"]["spent_usd"]) == usd(ledger["spent"])
        assert Decimal(board["budget"]["remaining_usd"]) == 3 - usd(ledger["spent"])
        assert board["budget"]["limit_usd"] == "3"
        models = {line["name"]: line for line in board["cost_by_model"]}
        assert set(models) == {MICRO, HAIKU}
        assert sum(Decimal(line["cost_usd"]) for line in models.values()) == usd(ledger["spent"])
        assert {line["name"]: line["model"] for line in board["cost_by_step"]} == {
            "question": MICRO,
            "answer": HAIKU,
        }
        assert models[HAIKU]["calls"] == 30
        assert (board["tokens"]["input"], board["tokens"]["output"], board["tokens"]["calls"]) == (
            ledger["input_tokens"],
            ledger["output_tokens"],
            60,
        )
        assert board["timing"]["finished_at"] == final["finished_at"]
        assert board["timing"]["eta_seconds"] == 0.0

    def test_a_running_job_has_a_rate_and_an_eta(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        _, api = make_api()
        with model_latency(devstack, 40):
            _, _, job = start(api, num_records=3000, budget_usd="5")
            wait_records_done(api, job["id"], 5)
            board = wait_until(
                lambda: (
                    (b := api.http.get(f"/jobs/{job['id']}/dashboard").json())["timing"][
                        "eta_seconds"
                    ]
                    and b
                ),
                what="the dashboard to show an ETA",
            )
            api.cancel(job["id"])
        assert board["status"] == "RUNNING"
        assert board["progress"]["records_per_second"] > 0
        assert board["timing"]["eta_at"] > board["timing"]["started_at"]
        assert Decimal(board["budget"]["reserved_usd"]) >= 0
        api.wait(job["id"], timeout=60)


class TestEvents:
    def test_progress_events_then_one_end_event_with_the_export(self, make_api: MakeApi) -> None:
        _, api = make_api()
        _, _, job = start(api, num_records=200, budget_usd="2")
        with api.http.stream("GET", f"/jobs/{job['id']}/events", timeout=90) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse(response)
        names = [name for name, _ in events]
        assert names[-1] == "end"
        assert names.count("end") == 1
        assert set(names[:-1]) == {"progress"}
        done = [data["progress"]["done"] for _, data in events[:-1]]
        assert done == sorted(done)
        end = events[-1][1]
        assert end["status"] == "COMPLETED"
        assert end["export"]["records"] == 200

    def test_a_finished_jobs_stream_ends_at_once(self, make_api: MakeApi) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=5)
        with api.http.stream("GET", f"/jobs/{job['id']}/events", timeout=10) as response:
            events = sse(response)
        assert [name for name, _ in events] == ["progress", "end"]


class TestDownload:
    def test_a_finished_job_downloads_its_export_by_presigned_url(self, make_api: MakeApi) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=20)
        link = api.http.get(f"/jobs/{job['id']}/download").json()
        assert (link["partial"], link["records"], link["format"]) == (False, 20, "jsonl")
        assert link["key"] == job["export"]["key"]
        assert "X-Amz-Expires=3600" in link["url"]
        body = httpx.get(link["url"]).content
        rows = [json.loads(line) for line in body.decode().splitlines()]
        assert len(rows) == 20 == len({row["id"] for row in rows})
        assert len(body) == link["bytes"]

    def test_another_format_of_a_finished_job_is_written_on_request(
        self, make_api: MakeApi
    ) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=20)
        link = api.http.get(f"/jobs/{job['id']}/download", params={"format": "parquet"}).json()
        assert (link["partial"], link["format"]) == (False, "parquet")
        table = pq.read_table(io.BytesIO(httpx.get(link["url"]).content), use_threads=False)
        assert table.num_rows == 20

    def test_a_running_job_downloads_what_it_has_made_so_far(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        _, api = make_api()
        with model_latency(devstack, 40):
            _, _, job = start(api, num_records=3000, budget_usd="5")
            early = api.http.get(f"/jobs/{job['id']}/download")
            if early.status_code == 409:  # nothing made yet: said so
                assert problem(early, 409)["errors"][0]["field"] == "job_id"
            wait_records_done(api, job["id"], 20)
            link = api.http.get(f"/jobs/{job['id']}/download", params={"format": "csv"}).json()
            api.cancel(job["id"])
        assert link["partial"] is True
        lines = httpx.get(link["url"]).content.decode().splitlines()
        assert 20 <= len(lines) - 1 < 3000  # a header, then the rows made so far
        assert lines[0].startswith("id,index,seed_index")
        api.wait(job["id"], timeout=60)

    def test_a_job_with_nothing_made_yet_is_a_409(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        _, api = make_api()
        with model_latency(devstack, 3000):
            _, _, job = start(api, num_records=10)
            found = problem(api.http.get(f"/jobs/{job['id']}/download"), 409)
            assert "no records yet" in found["detail"]
            api.cancel(job["id"])
        api.wait(job["id"], timeout=60, exported=False)
