"""``palette`` against the real system: run end to end, --json, API errors, watch, Ctrl-C."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.e2e.conftest import Palette, start
from tests.examples import EXAMPLES
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TEMPLATE = str(EXAMPLES / "template.json")
SEEDS = str(EXAMPLES / "seeds.jsonl")


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


class TestPaletteRun:
    def test_runs_a_job_into_a_folder_with_its_dataset_card(
        self, cli: Palette, tmp_path: Path
    ) -> None:
        out = tmp_path / "out"
        done = cli("run", TEMPLATE, SEEDS, "-n", "120", "--budget", "1", "--yes", "-o", str(out))
        assert "Status:  COMPLETED" in done.stdout
        table = pq.read_table(out / "dataset.parquet")
        assert table.num_rows == 120
        ids = table.column("id").to_pylist()
        job_id = ids[0].rsplit("-", 1)[0]
        assert sorted(ids) == sorted(f"{job_id}-{i}" for i in range(120))
        for step in ("question", "answer"):
            outputs = table.column(step).to_pylist()
            assert all(isinstance(o, str) and o for o in outputs)
        assert f"Dataset: {out / 'dataset.parquet'} (120 records)" in done.stdout
        assert done.stdout.count("Sample ") == 3
        header = card_header(out)
        assert header["dataset_info"]["splits"][0]["num_examples"] == 120
        names = [f["name"] for f in header["dataset_info"]["features"]]
        assert names[:6] == ["id", "index", "seed_index", "complete", "question", "answer"]
        assert header["configs"][0]["data_files"][0]["path"] == "dataset.parquet"
        body = (out / "README.md").read_text(encoding="utf-8")
        assert job_id in body
        assert "amazon.nova-micro-v1:0" in body

    def test_reuses_an_unchanged_template(self, cli: Palette, tmp_path: Path) -> None:
        first = cli(
            "run", TEMPLATE, SEEDS, "-n", "5", "--budget", "1", "--yes", "-o", str(tmp_path / "a")
        )
        second = cli(
            "run", TEMPLATE, SEEDS, "-n", "5", "--budget", "1", "--yes", "-o", str(tmp_path / "b")
        )
        assert "(created)" in first.stdout
        assert "unchanged" in second.stdout
        templates = json.loads(cli("templates", "list", "--json").stdout)
        assert [t["name"] for t in templates if t["owned"]] == ["support-dialogues"]

    def test_refuses_to_launch_unasked_without_a_terminal(
        self, cli: Palette, tmp_path: Path
    ) -> None:
        done = cli(
            "run",
            TEMPLATE,
            SEEDS,
            "-n",
            "5",
            "--budget",
            "1",
            "-o",
            str(tmp_path / "out"),
            check=False,
        )
        assert done.returncode == 2
        assert "pass --yes" in done.stderr
        assert json.loads(cli("jobs", "list", "--json").stdout) == []


class TestJsonOutput:
    def test_resource_commands_print_the_apis_json(self, cli: Palette, tmp_path: Path) -> None:
        created = json.loads(cli("templates", "create", TEMPLATE, "--json").stdout)
        shown = json.loads(cli("templates", "show", created["id"], "--json").stdout)
        assert shown == created
        versions = json.loads(cli("templates", "versions", created["id"], "--json").stdout)
        assert [v["version"] for v in versions["versions"]] == [1]
        seeds = json.loads(cli("seeds", "upload", SEEDS, "--json").stdout)
        assert seeds["records"] == 60
        report = json.loads(
            cli("seeds", "validate", seeds["key"], "-t", created["id"], "--json").stdout
        )
        assert report["valid"] is True
        assert report["records_checked"] == 60
        direct = json.loads(
            cli("seeds", "upload", SEEDS, "--name", "direct.jsonl", "--presigned", "--json").stdout
        )
        assert direct["presigned"] is True
        report = json.loads(
            cli("seeds", "validate", direct["key"], "-t", created["id"], "--json").stdout
        )
        assert (report["valid"], report["records_checked"]) == (True, 60)
        exported = tmp_path / "t.yaml"
        cli("templates", "export", created["id"], "-o", str(exported))
        imported = json.loads(cli("templates", "import", str(exported), "--json").stdout)
        assert imported["steps"] == created["steps"]
        job = json.loads(
            cli(
                "jobs",
                "create",
                "-t",
                created["id"],
                "-s",
                seeds["key"],
                "-n",
                "10",
                "--budget",
                "0.5",
                "--format",
                "jsonl",
                "--json",
            ).stdout
        )
        final = json.loads(
            cli("jobs", "watch", job["id"], "--json", "-o", str(tmp_path / "w")).stdout
        )
        assert final["status"] == "COMPLETED"
        lines = (tmp_path / "w" / "dataset.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 10
        # A cancel of a finished job changes nothing and says so.
        cancelled = json.loads(cli("jobs", "cancel", job["id"], "--json").stdout)
        assert cancelled["outcome"] == "ALREADY_ENDED"
        assert cancelled["job"]["status"] == "COMPLETED"
        listed = json.loads(cli("jobs", "list", "--json").stdout)
        assert [j["id"] for j in listed] == [job["id"]]
        downloaded = json.loads(
            cli(
                "jobs",
                "download",
                job["id"],
                "-o",
                str(tmp_path / "d"),
                "--format",
                "csv",
                "--json",
            ).stdout
        )
        assert downloaded["records"] == 10
        assert Path(downloaded["card"]).exists()
        usage = json.loads(cli("usage", "--group-by", "template", "--json").stdout)
        jobs = [row for row in usage["rows"] if row["kind"] == "job"]
        assert [row["key"] for row in jobs] == [created["id"]]
        assert usage["job_usd"] == jobs[0]["cost_usd"] == final["cost_usd"]


class TestUpStatusLogs:
    def test_up_again_is_harmless_and_status_shows_processes_and_queues(
        self, cli_stack: Palette
    ) -> None:
        pids = [p.pid for p in cli_stack.record().processes]
        again = start(cli_stack)
        assert again["already_running"] is True
        assert again["api"] == cli_stack.record().gateway_url
        assert [p.pid for p in cli_stack.record().processes] == pids
        status = json.loads(cli_stack("status", "--json").stdout)
        assert all(p["running"] for p in status["processes"])
        assert {p["name"] for p in status["processes"]} == {
            "supervisor",
            "secantus",
            "seaweedfs-s3",
            "bedrock-emulator",
            "gateway",
            "scheduler",
            "accounting",
            "generator-0",
            "generator-1",
        }
        assert isinstance(status["queues"], dict), status["queues"]
        assert status["queues"]["scheduler.submit-job"] == 0
        assert "service_started" in cli_stack("logs", "scheduler", "-n", "1000").stdout


class TestApiErrors:
    def test_a_missing_job_shows_the_problem_and_exits_1(self, cli: Palette) -> None:
        done = cli("jobs", "show", "no-such-job", check=False)
        assert done.returncode == 1
        assert "HTTP 404" in done.stderr
        assert "no job 'no-such-job'" in done.stderr
        assert done.stdout == ""

    def test_an_invalid_template_shows_each_field_error(self, cli: Palette, tmp_path: Path) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text(
            json.dumps(
                {
                    "name": "bad",
                    "steps": [
                        {"id": "a", "model": "no-such-model", "prompt": "{{ x }}", "max_tokens": 10}
                    ],
                }
            )
        )
        done = cli("templates", "create", str(bad), "--json", check=False)
        assert done.returncode == 1
        assert "HTTP 422" in done.stderr
        assert "no-such-model" in done.stderr
        assert done.stdout == ""

    def test_no_gateway_is_a_clear_error(self, cli: Palette, tmp_path: Path) -> None:
        done = cli("jobs", "list", check=False, PALETTE_STATE_DIR=str(tmp_path / "none"))
        assert done.returncode == 2
        assert "run `palette up`" in done.stderr


class TestCtrlC:
    def test_ctrl_c_cancels_and_downloads_the_partial_dataset(
        self, cli: Palette, tmp_path: Path
    ) -> None:
        control = cli_control(cli)
        control.configure(latency_ms=400)
        out = tmp_path / "out"
        try:
            proc = cli.popen(
                "run", TEMPLATE, SEEDS, "-n", "5000", "--budget", "20", "--yes", "-o", str(out)
            )
            assert proc.stdout is not None
            job_id = None
            for line in proc.stdout:
                if line.startswith("Job "):
                    job_id = line.split()[1].rstrip(":")
                    break
            assert job_id, "palette run never printed its job"
            with cli.api() as api:

                def made_one() -> bool:
                    assert proc.poll() is None
                    return bool(api.job(job_id)["records_done"])

                wait_until(made_one, what=f"job {job_id} to make a record", timeout=120)
                proc.send_signal(signal.SIGINT)
                rest, _ = proc.communicate("y\n", timeout=300)
                final = api.job(job_id)
        finally:
            control.reset()
        assert proc.returncode == 3, rest
        assert "Cancel job" in rest
        assert final["status"] == "CANCELLED"
        table = pq.read_table(out / "dataset.parquet")
        assert 0 < table.num_rows < 5000
        assert table.num_rows == final["export"]["records"]
        assert f"({table.num_rows} records)" in rest


def cli_control(cli: Palette):
    from palette.devstack.emulator_client import EmulatorControl

    return EmulatorControl(cli.record().emulator_control_url)
