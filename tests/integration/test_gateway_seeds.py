"""``/seed-data``: presigned uploads straight to S3, and streamed validation of whole files."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from palette.devstack.stack import DevStack
from tests.examples import SEEDS
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import ONE_STEP, TWO_STEPS, job_body, problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def put(ticket: dict[str, Any], body: bytes) -> None:
    response = httpx.put(ticket["url"], content=body, headers=ticket["headers"])
    assert response.status_code == 200, response.text


class TestPresignedUpload:
    def test_a_signed_put_of_exactly_the_size_lands_under_the_callers_prefix(
        self, make_api: MakeApi
    ) -> None:
        user, api = make_api()
        data = SEEDS.read_bytes()
        response = api.http.post(
            "/seed-data/uploads", json={"filename": "../../x/my seeds.jsonl", "bytes": len(data)}
        )
        assert response.status_code == 201, response.text
        ticket = response.json()
        assert ticket["key"] == f"seed-data/{user}/my_seeds.jsonl"
        assert (ticket["method"], ticket["headers"]["Content-Length"]) == ("PUT", str(len(data)))
        query = parse_qs(urlsplit(ticket["url"]).query)
        assert query["X-Amz-Expires"] == ["900"]
        assert set(query["X-Amz-SignedHeaders"][0].split(";")) >= {"content-length", "host"}
        put(ticket, data)
        template = api.create_template(TWO_STEPS)
        job = api.submit_job(**job_body(template["id"], ticket["key"], num_records=2))
        assert job["seed_key"] == ticket["key"]

    def test_too_large_or_unnamed_uploads_are_refused(self, make_api: MakeApi) -> None:
        _, api = make_api()
        too_big = {"filename": "s.jsonl", "bytes": 2 * 1024**3}
        assert problem(api.http.post("/seed-data/uploads", json=too_big), 413)
        for name in ("...", "noext", "s.xlsx"):
            found = problem(
                api.http.post("/seed-data/uploads", json={"filename": name, "bytes": 5}), 422
            )
            assert found["errors"][0]["field"] == "filename"
        problem(api.http.post("/seed-data/uploads", json={"filename": "s.csv", "bytes": 0}), 422)


SEED_TEXTS = {
    "json": '[{"product": "caf\u00e9"}, {"product": "tea"}]',
    "jsonl": '{"product": "caf\u00e9"}\n{"product": "tea"}\n',
    "csv": "product\ncaf\u00e9\ntea\n",
}


class TestUploadEncoding:
    """``POST /seed-data``: UTF-8 with or without a BOM in every format; anything else is 422."""

    @pytest.mark.parametrize("ext", SEED_TEXTS)
    def test_a_byte_order_mark_is_accepted_and_other_encodings_are_named(
        self, make_api: MakeApi, devstack: DevStack, s3: Any, ext: str
    ) -> None:
        user, api = make_api()
        text = SEED_TEXTS[ext]

        def upload(name: str, body: bytes) -> httpx.Response:
            return api.http.post("/seed-data", params={"filename": name}, content=body)

        accepted = upload(f"bom.{ext}", b"\xef\xbb\xbf" + text.encode())
        assert accepted.status_code == 201, accepted.text
        assert (accepted.json()["format"], accepted.json()["records"]) == (ext, 2)
        bad = text.encode().replace(b"tea", b"t\xffa")
        offset = bad.index(b"\xff")
        refusals = {
            f"utf16.{ext}": (text.encode("utf-16"), "seed file is UTF-16 (byte-order mark)"),
            f"utf16le.{ext}": (text.encode("utf-16-le"), "seed file looks like UTF-16"),
            f"ff.{ext}": (bad, f"byte 0xff at offset {offset} is not UTF-8"),
        }
        for name, (body, says) in refusals.items():
            found = problem(upload(name, body), 422)
            assert found["errors"][0]["field"] == "file", found
            assert found["errors"][0]["problem"].startswith(says), found
            assert "JSON" not in found["detail"], found
        listed = s3.list_objects_v2(Bucket=devstack.bucket, Prefix=f"seed-data/{user}/")
        assert [item["Key"] for item in listed["Contents"]] == [f"seed-data/{user}/bom.{ext}"]


class TestValidate:
    def upload(self, api: Any, name: str, body: bytes) -> str:
        ticket = api.http.post("/seed-data/uploads", json={"filename": name, "bytes": len(body)})
        put(ticket.json(), body)
        key: str = ticket.json()["key"]
        return key

    def test_every_record_of_a_good_file_is_checked(self, make_api: MakeApi) -> None:
        _, api = make_api()
        template = api.create_template(TWO_STEPS)
        key = self.upload(api, "good.jsonl", SEEDS.read_bytes())
        report = api.http.post(
            "/seed-data/validate", json={"key": key, "template_id": template["id"]}
        ).json()
        assert report | {"key": key} == {
            "key": key,
            "format": "jsonl",
            "template_id": template["id"],
            "template_version": 1,
            "schema_requirements": ["persona.role", "product"],
            "valid": True,
            "records_checked": 60,
            "records_missing_fields": 0,
            "examples": [],
            "parse_error": None,
        }

    def test_records_lacking_fields_are_counted_with_the_first_examples(
        self, make_api: MakeApi
    ) -> None:
        _, api = make_api()
        template = api.create_template(TWO_STEPS)
        rows = ["product,other"] + [f"p{i},x" for i in range(50)]
        key = self.upload(api, "rows.csv", ("\n".join(rows) + "\n").encode())
        report = api.http.post(
            "/seed-data/validate", json={"key": key, "template_id": template["id"]}
        ).json()
        assert (report["format"], report["valid"], report["records_checked"]) == (
            "csv",
            False,
            50,
        )
        assert report["records_missing_fields"] == 50
        assert report["examples"][:2] == [
            {"record": 1, "missing": ["persona.role"]},
            {"record": 2, "missing": ["persona.role"]},
        ]
        assert len(report["examples"]) == 5

    def test_the_first_parse_error_is_a_422_with_its_line_and_the_report(
        self, make_api: MakeApi
    ) -> None:
        _, api = make_api()
        template = api.create_template(ONE_STEP)
        body = b'{"product": "a"}\n{"nope": "b"}\n{"product": \n{"product": "d"}\n'
        key = self.upload(api, "broken.jsonl", body)
        found = problem(
            api.http.post("/seed-data/validate", json={"key": key, "template_id": template["id"]}),
            422,
        )
        assert found["type"].endswith("invalid-seed-file")
        assert found["errors"] == [
            {"field": "key", "problem": "invalid JSON: Expecting value", "line": 3, "record": 3}
        ]
        report = found["report"]
        assert (report["valid"], report["records_checked"], report["examples"]) == (
            False,
            2,
            [{"record": 2, "missing": ["product"]}],
        )
        assert (report["parse_error"]["line"], report["parse_error"]["record"]) == (3, 3)
        array = self.upload(api, "array.json", b'[{"product": 1}, {"nope": 2}]')
        report = api.http.post(
            "/seed-data/validate", json={"key": array, "template_id": template["id"]}
        ).json()
        assert (report["format"], report["records_checked"], report["examples"]) == (
            "json",
            2,
            [{"record": 2, "missing": ["product"]}],
        )

    def test_missing_files_and_templates_are_404(self, make_api: MakeApi) -> None:
        user, api = make_api()
        template = api.create_template(ONE_STEP)
        missing = {"key": f"seed-data/{user}/none.jsonl", "template_id": template["id"]}
        assert problem(api.http.post("/seed-data/validate", json=missing), 404)
        key = self.upload(api, "ok.jsonl", b'{"product": 1}\n')
        no_template = {"key": key, "template_id": "nope"}
        assert problem(api.http.post("/seed-data/validate", json=no_template), 404)
