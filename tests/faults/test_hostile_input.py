"""Hostile and broken input: a clear 4xx naming the problem, nothing half-written.

Table-driven, against the real gateway processes on the real broker, database
and S3. Every case sends its request(s) and checks that:

* the answer is the expected 4xx problem (RFC 9457) whose ``errors`` name the
  field at fault and whose text says what is wrong, within ``ANSWER_SECONDS``
  (a hang is a failure);
* nothing was written: no template, job or seed object of the case's user in
  the database or S3 (and no model call in the emulator's billing);
* the services still serve: ``/health`` and ``/ready`` answer, and a normal
  request of the same kind succeeds right after.

Kinds: templates (``TEMPLATE_CASES`` written with ``POST /templates``,
``PREVIEW_CASES`` rendered by ``preview`` with a hostile seed), seed files
(``SEED_FILES`` through the upload, validation and job paths; ``SIZE_CASES``
above the limits on the tight gateway) and requests (``REQUEST_CASES``,
``UNICODE_CASES``). One case of each kind (a template, a seed file, a request)
is also marked ``quick``: ``make test`` runs those three.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.examples import SEEDS
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import MICRO, ONE_STEP, job_body, problem

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

ANSWER_SECONDS = 10.0
quick = pytest.mark.quick


@dataclass(frozen=True)
class Expect:
    """The problem a case must get: status, the field named, words in its text."""

    status: int
    field: str
    says: str
    more: list[str] = field(default_factory=list)  # other fields that must be named too


def refused(response: httpx.Response, expect: Expect) -> dict[str, Any]:
    """Assert the expected problem; return its body."""
    body = problem(response, expect.status)
    fields = {e["field"] for e in body["errors"]}
    assert {expect.field, *expect.more} <= fields, (expect, body)
    text = " ".join([body["detail"], *(e["problem"] for e in body["errors"])]).lower()
    assert expect.says.lower() in text, (expect.says, body)
    return body


def send(call: Callable[..., httpx.Response], *args: Any, **kwargs: Any) -> httpx.Response:
    """Make the request ``call(*args, **kwargs)``; it must be answered within ``ANSWER_SECONDS``."""
    began = time.monotonic()
    response = call(*args, **kwargs)
    took = time.monotonic() - began
    assert took < ANSWER_SECONDS, f"answered after {took:.1f}s"
    return response


def assert_serving(url: str, api: GatewayClient) -> None:
    """The gateway is live and ready, and answers an authenticated read."""
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200
    ready = httpx.get(f"{url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert api.http.get("/templates", params={"limit": 1}).status_code == 200


def seed_objects(s3: Any, bucket: str, user: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"seed-data/{user}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def steps(prompt: str, **extra: Any) -> dict[str, Any]:
    """A one-step template body with this prompt."""
    return {"name": "hostile", "steps": [{"id": "s", "model": MICRO, "prompt": prompt, **extra}]}


# ---------------------------------------------------------------- templates

PROMPT = "steps[0].prompt"
NAMESPACE_DOUBLING = (
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
)


def prompt_case(source: str, says: str, case_id: str, *marks: Any) -> Any:
    """A one-step template whose prompt must be refused (422 naming it) for saying ``says``."""
    return pytest.param(steps(source), Expect(422, PROMPT, says), id=case_id, marks=marks)


TEMPLATE_CASES = [
    prompt_case("{{ ''.__class__.__mro__ }}", "'__class__', '__mro__'", "ssti-class-mro", quick),
    prompt_case(
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "'__globals__', '__init__'",
        "ssti-cycler-globals",
    ),
    prompt_case("{{ joiner['__globals__'] }}", "__globals__", "globals-item"),
    prompt_case("{{ namespace|attr('__globals__') }}", "__globals__", "globals-attr-filter"),
    prompt_case(
        "{{ range|attr('__glo' ~ 'bals__') }}", "not allowed in the sandbox", "globals-at-render"
    ),
    prompt_case("{% for i in range(10**9) %}x{% endfor %}", "range too big", "range-10e9"),
    prompt_case(
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}",
        "longer than",
        "render-loops",
    ),
    prompt_case("{{ 'x' * 10**8 }}", "too large", "huge-string-repeat"),
    prompt_case(NAMESPACE_DOUBLING, "too large", "huge-doubling"),
    prompt_case(
        "{% for i in range(99999) %}{{ 'line of text ' * 50 }}{% endfor %}",
        "longer than 200000 characters",
        "huge-output",
    ),
    prompt_case("{{ ((((2**64)**64)**64)**64)**64 }}", "bits", "power-tower"),
    prompt_case("{{ '{:>999999999}'.format(1) }}", "width or precision", "format-width"),
    prompt_case("{{ ('x' * 100000)|replace('x', 'x' * 100000) }}", "too large", "replace-blowup"),
    prompt_case("{{ " + "(" * 10_000 + "1" + ")" * 10_000 + " }}", "nesting", "nested-parens"),
    prompt_case("{{ x" + "|trim" * 10_000 + " }}", "nesting", "nested-filters"),
    prompt_case("{{ " + "[" * 5_000 + "]" * 5_000 + " }}", "nesting", "nested-lists"),
    pytest.param(
        {
            "name": "many",
            "steps": [{"id": f"s{i}", "model": MICRO, "prompt": "x"} for i in range(10_000)],
        },
        Expect(422, "steps", "at most 10"),
        id="10000-steps",
    ),
    pytest.param(
        steps("ok", system="{{ self._TemplateReference__context }}"),
        Expect(422, "steps[0].system", "private"),
        id="mangled-private-name",
    ),
]


class TestHostileTemplates:
    @pytest.mark.parametrize(("body", "expect"), TEMPLATE_CASES)
    def test_is_refused_naming_the_step_and_nothing_is_stored(
        self, make_api: MakeApi, gateway_url: str, mongo: Any, body: Any, expect: Expect
    ) -> None:
        user, api = make_api()
        refused(send(api.http.post, "/templates", json=body), expect)
        assert mongo["templates"].count_documents({"owner": user}) == 0
        assert_serving(gateway_url, api)
        assert api.http.post("/templates", json=ONE_STEP).status_code == 201


LOOP = "{% for i in range(n) %}{{ text }}{% endfor %}"

PREVIEW_CASES = [
    pytest.param(
        {"n": 10**9, "text": "x"},
        Expect(422, PROMPT, "range too big"),
        id="seed-range",
    ),
    pytest.param(
        {"n": 99_999, "text": "x" * 100},
        Expect(422, PROMPT, "longer than 200000 characters"),
        id="seed-output-flood",
    ),
    pytest.param(
        b'{"seed": {"n": 1, "text": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
        Expect(400, "body", "nested too deeply"),
        id="seed-nested-10000",
    ),
    pytest.param({"n": "many", "text": "x"}, Expect(422, PROMPT, "render failed"), id="seed-type"),
    pytest.param({"n": 1}, Expect(422, "seed", "lacks fields"), id="seed-missing-field"),
]


class TestHostileSeedRecordsInAPreview:
    @pytest.mark.parametrize(("seed", "expect"), PREVIEW_CASES)
    def test_the_render_limits_answer_and_no_model_is_called(
        self,
        make_api: MakeApi,
        gateway_url: str,
        devstack: DevStack,
        seed: dict[str, Any] | bytes,
        expect: Expect,
    ) -> None:
        user, api = make_api()
        template = api.create_template(steps(LOOP))
        assert template["schema_requirements"] == ["n", "text"]
        path = f"/templates/{template['id']}/preview"
        body = seed if isinstance(seed, bytes) else json.dumps({"seed": seed}).encode()
        headers = {"Content-Type": "application/json"}
        for run in ("false", "true"):
            answer = send(api.http.post, path, params={"run": run}, content=body, headers=headers)
            refused(answer, expect)
        assert devstack.emulator_control().billing(owner=user) == []
        assert_serving(gateway_url, api)
        fine = api.http.post(path, json={"seed": {"n": 2, "text": "ok"}})
        assert (fine.status_code, fine.json()["steps"][0]["prompt"]) == (200, "okok")


# --------------------------------------------------------------- seed files

WIDE_ROW = b"product\n" + b",".join([b"x"] * 100_000) + b"\n"
WIDE_HEADER = b",".join(b"c%d" % i for i in range(100_000)) + b"\n"
DEEP = b"[" * 10_000 + b"]" * 10_000

SEED_FILES = [
    pytest.param(
        "bad.jsonl",
        b'{"product": "a"}\n{"product": "\xff\xfe"}\n',
        "byte 0xff at offset 30 is not UTF-8",
        2,
        id="invalid-utf8-jsonl",
        marks=quick,
    ),
    pytest.param(
        "bad.csv", b"product\nok\n\xffno\n", "byte 0xff at offset 11", 3, id="invalid-utf8-csv"
    ),
    pytest.param(
        "bad.json", b'[{"product": "\xff"}]', "byte 0xff at offset 14", 1, id="invalid-utf8-json"
    ),
    pytest.param(
        "cut.json", b'[{"product": "a"}, {"product": "b"', "truncated", None, id="truncated-json"
    ),
    pytest.param(
        "cut.jsonl", b'{"product": "a"}\n{"product": "b"', "invalid JSON", 2, id="truncated-jsonl"
    ),
    pytest.param(
        "values.json",
        b'[{"product": "a"}, 42, "x"]',
        "must be a JSON object",
        None,
        id="json-not-objects",
    ),
    pytest.param(
        "values.jsonl",
        b'{"product": "a"}\n[1, 2]\n',
        "must be a JSON object",
        2,
        id="jsonl-not-objects",
    ),
    pytest.param("ragged.csv", b"product,other\na,b\nc\n", "row has 1 fields", 3, id="ragged-csv"),
    pytest.param("wide.csv", WIDE_ROW, "row has 100000 fields", 2, id="csv-row-100000-columns"),
    pytest.param(
        "wide-header.csv", WIDE_HEADER, "more than 1000 columns", 1, id="csv-header-100000"
    ),
    pytest.param(
        "deep.jsonl", b'{"product": ' + DEEP + b"}\n", "nested", 1, id="jsonl-nested-10000"
    ),
    pytest.param(
        "deep.json", b'[{"product": ' + DEEP + b"}]", "nested", None, id="json-nested-10000"
    ),
    pytest.param("empty.jsonl", b"", "empty", None, id="empty-file"),
    pytest.param("blank.jsonl", b"\n  \n\n", "no records", None, id="blank-lines-only"),
    pytest.param("header.csv", b"product\n", "no rows", None, id="csv-header-only"),
    pytest.param("array.json", b"[]", "no records", None, id="empty-json-array"),
]


class TestHostileSeedFiles:
    @pytest.mark.parametrize(("name", "body", "says", "line"), SEED_FILES)
    def test_every_path_refuses_the_file_naming_the_problem_and_writes_nothing(
        self,
        make_api: MakeApi,
        gateway_url: str,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
        name: str,
        body: bytes,
        says: str,
        line: int | None,
    ) -> None:
        user, api = make_api()
        template = api.create_template(ONE_STEP)
        # The upload path: the file is the request body; nothing reaches S3.
        uploaded = refused(
            send(api.http.post, "/seed-data", params={"filename": name}, content=body),
            Expect(422, "file", says),
        )
        if line is not None:
            assert uploaded["errors"][0]["line"] == line, uploaded
        assert seed_objects(s3, devstack.bucket, user) == []
        # The presigned path: the file is in S3 as a ticket's PUT leaves it.
        key = f"seed-data/{user}/{name}"
        s3.put_object(Bucket=devstack.bucket, Key=key, Body=body)
        check = {"key": key, "template_id": template["id"]}
        validated = refused(
            send(api.http.post, "/seed-data/validate", json=check), Expect(422, "key", says)
        )
        assert validated["report"]["valid"] is False
        if line is not None:
            assert validated["errors"][0]["line"] == line, validated
        job = job_body(template["id"], key, num_records=1)
        refused(send(api.http.post, "/jobs", json=job), Expect(422, "seed_key", says))
        assert mongo["jobs"].count_documents({"owner": user}) == 0
        assert seed_objects(s3, devstack.bucket, user) == [key]  # only what the test put there
        assert_serving(gateway_url, api)
        good = api.upload_seeds(SEEDS)
        assert good["records"] == 60


class TestSeedFilesAboveTheLimits:
    """The tight gateway: bodies up to 131072 bytes, seed files up to 100000 bytes."""

    def test_uploads_tickets_and_validation_of_too_large_files_are_413(
        self, make_tight_api: MakeApi, tight_gateway: Any, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        user, api = make_tight_api()
        template = api.create_template(ONE_STEP)
        line = b'{"product": "a"}\n'
        big = line * (140_000 // len(line))
        refused(
            send(api.http.post, "/seed-data", params={"filename": "big.jsonl"}, content=big),
            Expect(413, "body", "larger than the 131072 bytes"),
        )
        ticket = {"filename": "big.jsonl", "bytes": 100_001}
        refused(
            send(api.http.post, "/seed-data/uploads", json=ticket),
            Expect(413, "bytes", "at most 100000"),
        )
        refused(
            send(api.http.post, "/seed-data/uploads", json={**ticket, "bytes": 0}),
            Expect(422, "bytes", "greater than or equal to 1"),
        )
        assert seed_objects(s3, devstack.bucket, user) == []
        key = f"seed-data/{user}/big.jsonl"
        s3.put_object(Bucket=devstack.bucket, Key=key, Body=line * (100_001 // len(line) + 1))
        check = {"key": key, "template_id": template["id"]}
        refused(
            send(api.http.post, "/seed-data/validate", json=check),
            Expect(413, "key", "at most 100000"),
        )
        assert mongo["jobs"].count_documents({"owner": user}) == 0
        assert_serving(tight_gateway.url, api)


# ----------------------------------------------------------------- requests


def _job(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda good: {**good, **changes}


def _without(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda good: {k: v for k, v in good.items() if k not in names}


REQUEST_CASES = [
    pytest.param(
        _job(num_records="many"),
        Expect(422, "num_records", "integer"),
        id="type-num-records",
        marks=quick,
    ),
    pytest.param(_job(budget_usd=[1]), Expect(422, "budget_usd", "decimal"), id="type-budget"),
    pytest.param(_job(output_format=7), Expect(422, "output_format", "jsonl"), id="type-format"),
    pytest.param(_job(template_id=12), Expect(422, "template_id", "string"), id="type-template-id"),
    pytest.param(_job(priority="high"), Expect(422, "priority", "integer"), id="type-priority"),
    pytest.param(
        _job(partition_size=1.5), Expect(422, "partition_size", "integer"), id="type-partition"
    ),
    pytest.param(
        lambda good: {},
        Expect(
            422,
            "template_id",
            "required",
            ["seed_key", "num_records", "budget_usd", "output_format"],
        ),
        id="missing-every-field",
    ),
    pytest.param(
        _without("budget_usd"), Expect(422, "budget_usd", "required"), id="missing-budget"
    ),
    pytest.param(_job(colour="red"), Expect(422, "colour", "extra"), id="unknown-field"),
    pytest.param(
        _job(num_records=10**30),
        Expect(422, "num_records", "less than or equal"),
        id="huge-num-records",
    ),
    pytest.param(
        _job(budget_usd="1e400"), Expect(422, "budget_usd", "18 digits"), id="huge-budget-string"
    ),
    pytest.param(
        _job(budget_usd=1e308), Expect(422, "budget_usd", "budget"), id="huge-budget-number"
    ),
    pytest.param(
        _job(partition_size=2**64),
        Expect(422, "partition_size", "less than or equal"),
        id="huge-partition",
    ),
    pytest.param(
        _job(template_version=10**100),
        Expect(422, "template_version", "less than or equal"),
        id="huge-version",
    ),
    pytest.param(
        _job(priority=-(10**20)),
        Expect(422, "priority", "greater than or equal"),
        id="huge-negative-priority",
    ),
    pytest.param(
        _job(budget_usd=-1), Expect(422, "budget_usd", "greater than 0"), id="negative-budget"
    ),
    pytest.param(
        _job(budget_usd="-0.01"),
        Expect(422, "budget_usd", "greater than 0"),
        id="negative-budget-string",
    ),
    pytest.param(_job(budget_usd="NaN"), Expect(422, "budget_usd", "finite"), id="nan-budget"),
    pytest.param(
        _job(budget_usd="Infinity"), Expect(422, "budget_usd", "finite"), id="infinite-budget"
    ),
    pytest.param(
        _job(num_records=-5),
        Expect(422, "num_records", "greater than or equal"),
        id="negative-records",
    ),
]


@pytest.fixture
def job_user(make_api: MakeApi) -> tuple[str, GatewayClient, dict[str, Any]]:
    """A user with a template and seeds: (user, client, a valid POST /jobs body)."""
    user, api = make_api()
    template = api.create_template(ONE_STEP)
    seeds = api.upload_seeds(SEEDS)
    return user, api, job_body(template["id"], seeds["key"], num_records=1, budget_usd="0.5")


def assert_jobs_still_created(
    api: GatewayClient, good: dict[str, Any], mongo: Any, user: str
) -> None:
    assert mongo["jobs"].count_documents({"owner": user}) == 0
    created = api.http.post("/jobs", json=good)
    assert created.status_code == 201, created.text
    api.wait(created.json()["id"], timeout=60)


class TestHostileRequests:
    @pytest.mark.parametrize(("change", "expect"), REQUEST_CASES)
    def test_a_bad_job_request_is_refused_naming_the_field_and_creates_nothing(
        self,
        job_user: tuple[str, GatewayClient, dict[str, Any]],
        gateway_url: str,
        mongo: Any,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        expect: Expect,
    ) -> None:
        user, api, good = job_user
        refused(send(api.http.post, "/jobs", json=change(good)), expect)
        assert_serving(gateway_url, api)
        assert_jobs_still_created(api, good, mongo, user)

    @pytest.mark.parametrize(
        ("raw", "expect"),
        [
            (b'{"num_records": 1e999999}', Expect(400, "body", "number out of range")),
            (b'{"num_records": ' + b"9" * 5000 + b"}", Expect(400, "body", "value out of range")),
            (b"{not json", Expect(400, "body", "JSON is malformed")),
            (b'{"template_id": "\\ud800", "seed_key": "k"}', Expect(400, "body", "surrogate")),
            (b"[" * 10_000 + b"]" * 10_000, Expect(400, "body", "nested too deeply")),
            (b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, Expect(400, "body", "nested too deeply")),
        ],
        ids=[
            "exponent-overflow",
            "5000-digit-number",
            "malformed",
            "lone-surrogate",
            "deep-array",
            "deep-object",
        ],
    )
    def test_a_body_that_is_barely_json_is_a_4xx(
        self,
        job_user: tuple[str, GatewayClient, dict[str, Any]],
        gateway_url: str,
        mongo: Any,
        raw: bytes,
        expect: Expect,
    ) -> None:
        user, api, good = job_user
        answer = send(
            api.http.post, "/jobs", content=raw, headers={"Content-Type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, answer.text
        refused(answer, expect)
        assert_serving(gateway_url, api)
        assert_jobs_still_created(api, good, mongo, user)

    def test_bodies_above_the_size_limit_are_413_on_every_json_route(
        self, make_tight_api: MakeApi, tight_gateway: Any, mongo: Any
    ) -> None:
        user, api = make_tight_api()
        template = api.create_template(ONE_STEP)
        filler = "x" * 70_000
        routes = [
            ("/templates", {"name": filler, "steps": ONE_STEP["steps"]}),
            (f"/templates/{template['id']}/preview", {"seed": {"product": filler}}),
            ("/jobs", job_body(template["id"], filler)),
            ("/seed-data/uploads", {"filename": filler, "bytes": 10}),
            ("/seed-data/validate", {"key": filler, "template_id": template["id"]}),
        ]
        for path, body in routes:
            refused(send(api.http.post, path, json=body), Expect(413, "body", "65536 bytes"))
        refused(
            send(api.http.put, f"/templates/{template['id']}", json=routes[0][1]),
            Expect(413, "body", "65536 bytes"),
        )
        yaml_body = f"name: {filler}\nsteps: []\n".encode()
        refused(
            send(api.http.post, "/templates/yaml", content=yaml_body),
            Expect(413, "body", "65536 bytes"),
        )
        assert mongo["templates"].count_documents({"owner": user}) == 1
        assert mongo["jobs"].count_documents({"owner": user}) == 0
        assert_serving(tight_gateway.url, api)


UNICODE = "Ünïcødé 名前 🎉 \u202etxt.exe"

UNICODE_CASES = [
    pytest.param(
        "POST",
        "/templates",
        {"name": "n", "steps": [{"id": "ステップ", "model": MICRO, "prompt": "x"}]},
        Expect(422, "steps[0].id", "pattern"),
        id="step-id",
    ),
    pytest.param(
        "POST",
        "/templates",
        {"name": "n", "steps": [{"id": "s", "model": "모델", "prompt": "x"}]},
        Expect(422, "steps[0].model", "price"),
        id="model",
    ),
    pytest.param(
        "POST",
        "/templates",
        {"name": "\ud800", "steps": ONE_STEP["steps"]},
        Expect(400, "body", "surrogate"),
        id="name-lone-surrogate",
    ),
    pytest.param(
        "POST",
        "/templates",
        steps("{{ x }} \udfff"),
        Expect(400, "body", "surrogate"),
        id="prompt-lone-surrogate",
    ),
    pytest.param(
        "POST",
        "/jobs",
        {
            "template_id": UNICODE,
            "seed_key": UNICODE,
            "num_records": 1,
            "budget_usd": "1",
            "output_format": "jsonl",
        },
        Expect(404, "template_id", "no template"),
        id="job-ids",
    ),
    pytest.param(
        "POST",
        "/jobs",
        {
            "template_id": "t",
            "seed_key": "k",
            "num_records": 1,
            "budget_usd": "1",
            "output_format": "ジェイソン",
        },
        Expect(422, "output_format", "jsonl"),
        id="job-format",
    ),
    pytest.param(
        "POST",
        "/seed-data/uploads",
        {"filename": "名前.xlsx", "bytes": 5},
        Expect(422, "filename", ".jsonl"),
        id="upload-filename",
    ),
    pytest.param(
        "POST",
        "/seed-data/uploads",
        {"filename": "🎉", "bytes": 5},
        Expect(422, "filename", "empty"),
        id="upload-filename-emoji-only",
    ),
    pytest.param(
        "POST",
        "/seed-data/validate",
        {"key": f"seed-data/{UNICODE}", "template_id": UNICODE},
        Expect(404, "template_id", "no template"),
        id="validate-ids",
    ),
    pytest.param("GET", f"/jobs/{UNICODE}", None, Expect(404, "job_id", "no job"), id="job-path"),
    pytest.param(
        "GET",
        f"/templates/{UNICODE}/versions",
        None,
        Expect(404, "template_id", "no template"),
        id="template-path",
    ),
    pytest.param(
        "GET", "/jobs?cursor=カーソル", None, Expect(422, "cursor", "not a cursor"), id="cursor"
    ),
    pytest.param("GET", "/jobs?status=完了", None, Expect(422, "status", ""), id="status-filter"),
]


class TestUnicodeInStringFields:
    @pytest.mark.parametrize(("method", "path", "body", "expect"), UNICODE_CASES)
    def test_a_string_the_field_cannot_take_is_a_4xx_naming_it(
        self,
        make_api: MakeApi,
        gateway_url: str,
        mongo: Any,
        s3: Any,
        devstack: DevStack,
        method: str,
        path: str,
        body: Any,
        expect: Expect,
    ) -> None:
        user, api = make_api()
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        answer = send(api.http.request, method, path, content=content, headers=headers)
        refused(answer, expect)
        assert mongo["templates"].count_documents({"owner": user}) == 0
        assert mongo["jobs"].count_documents({"owner": user}) == 0
        assert seed_objects(s3, devstack.bucket, user) == []
        assert_serving(gateway_url, api)

    def test_unicode_in_free_text_fields_is_stored_and_read_back_exactly(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        user, api = make_api()
        body = {
            "name": UNICODE,
            "steps": [
                {
                    "id": "s",
                    "model": MICRO,
                    "prompt": f"{UNICODE} {{{{ 名前 }}}} {{{{ product }}}}",
                    "system": UNICODE,
                }
            ],
        }
        created = api.http.post("/templates", json=body)
        assert created.status_code == 201, created.text
        template = created.json()
        assert (template["name"], template["steps"][0]["system"]) == (UNICODE, UNICODE)
        assert template["schema_requirements"] == ["product", "名前"]
        assert api.http.get(f"/templates/{template['id']}").json() == template
        preview = api.http.post(
            f"/templates/{template['id']}/preview", json={"seed": {"名前": "🎉", "product": "ü"}}
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["steps"][0]["prompt"] == f"{UNICODE} 🎉 ü"
        key = {"Idempotency-Key": "ключ".encode()}
        seeds = api.upload_seeds(SEEDS, name="семена 🎉.jsonl")
        assert seeds["key"].startswith(f"seed-data/{user}/seeds-")
        assert seeds["key"].endswith(".jsonl")
        job = api.http.post("/jobs", json=job_body(template["id"], seeds["key"]), headers=key)
        found = refused(job, Expect(422, "Idempotency-Key", "visible ASCII"))
        assert found["status"] == 422
        assert mongo["jobs"].count_documents({"owner": user}) == 0
