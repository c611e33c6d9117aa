"""docker-compose.yml: valid by the Compose specification; its stores, services and monitoring."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.files import DEPLOY, compose, palette_compose_services

pytestmark = pytest.mark.deploy

# Long-running services (the one-shot bucket job excepted) must say when they are healthy.
ONE_SHOT = {"minio-bucket"}


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as check-jsonschema ships it (vendor/)."""
    import check_jsonschema.builtin_schemas.vendor as vendor

    text = resources.files(vendor).joinpath("compose-spec.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class TestComposeSchema:
    def test_file_validates_against_the_compose_specification(self) -> None:
        schema = compose_schema()
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
        errors = sorted(
            validator_cls(schema).iter_errors(compose()), key=lambda e: list(e.absolute_path)
        )
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )

    def test_schema_catches_a_misspelt_key(self) -> None:
        schema = compose_schema()
        broken = compose()
        broken["services"]["gateway"]["depends_onn"] = {}
        validator = jsonschema.validators.validator_for(schema)(schema)
        assert any("depends_onn" in e.message for e in validator.iter_errors(broken))


class TestStores:
    def test_rabbitmq_is_named_rabbitmq_with_the_management_ui_and_quorum_queues(self) -> None:
        rabbit = compose()["services"]["rabbitmq"]  # `make demo` starts it by this name
        image = rabbit["image"]
        match = re.fullmatch(r"rabbitmq:(\d+)(?:\.(\d+))?.*-management(?:-alpine)?", image)
        assert match, image
        major, minor = int(match[1]), int(match[2] or 0)
        assert (major, minor) >= (3, 8), "quorum queues need RabbitMQ 3.8+"
        assert any(p.endswith(":15672") for p in rabbit["ports"])
        assert any(p.endswith(":5672") for p in rabbit["ports"])

    def test_mongodb_is_a_one_node_replica_set_initiated_by_its_health_check(self) -> None:
        mongo = compose()["services"]["mongodb"]
        assert mongo["command"][:2] == ["--replSet", "rs0"]
        check = " ".join(mongo["healthcheck"]["test"])
        assert "rs.initiate" in check
        assert "isWritablePrimary" in check
        for name, spec in palette_compose_services().items():
            assert "replicaSet=rs0" in spec["environment"]["PALETTE_MONGO_URL"], name

    def test_minio_bucket_is_created_once_before_the_services_start(self) -> None:
        services = compose()["services"]
        job = services["minio-bucket"]
        assert "mc mb --ignore-existing" in " ".join(job["command"])
        assert job["restart"] == "no"
        assert job["depends_on"]["minio"]["condition"] == "service_healthy"
        for name, spec in palette_compose_services().items():
            condition = spec["depends_on"]["minio-bucket"]["condition"]
            assert condition == "service_completed_successfully", name


class TestServices:
    def test_the_four_services_run_from_the_image_with_their_commands(self) -> None:
        services = palette_compose_services()
        assert set(services) == {"gateway", "scheduler", "generator", "accounting"}
        for name, spec in services.items():
            assert spec["command"] == [f"palette-{name}"]
            assert spec["build"]["context"] == "."

    def test_generator_scales_with_no_fixed_name_or_host_port(self) -> None:
        generator = compose()["services"]["generator"]
        for key in ("container_name", "ports", "hostname"):
            assert key not in generator, f"--scale generator=4 fails with a fixed {key}"

    def test_every_long_running_service_has_a_health_check(self) -> None:
        for name, spec in compose()["services"].items():
            if name not in ONE_SHOT:
                assert "test" in spec.get("healthcheck", {}), name

    def test_start_order_follows_health(self) -> None:
        services = compose()["services"]
        for name, spec in services.items():
            for dep, how in (spec.get("depends_on") or {}).items():
                wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
                assert how["condition"] == wanted, f"{name} -> {dep}"
                assert dep in ONE_SHOT or "healthcheck" in services[dep], dep
        for name in palette_compose_services():
            needs = set(services[name]["depends_on"])
            assert {"rabbitmq", "mongodb", "minio-bucket"} <= needs, name

    def test_data_lives_in_named_volumes(self) -> None:
        data = compose()
        declared = set(data["volumes"])
        for name in ("rabbitmq", "mongodb", "minio"):
            mounts = data["services"][name]["volumes"]
            for mount in mounts:
                source = mount.split(":", 1)[0]
                assert source in declared, f"{name}: {mount} is not a named volume"
        assert declared == {
            "rabbitmq-data",
            "mongodb-data",
            "mongodb-config",
            "minio-data",
            "prometheus-data",
        }


class TestMonitoring:
    def test_every_service_serves_metrics_on_an_exposed_unpublished_port(self) -> None:
        for name, spec in palette_compose_services().items():
            port = str(spec["environment"][f"PALETTE_{name.upper()}_METRICS_PORT"])
            assert int(port) > 0, name
            assert [str(p) for p in spec["expose"]] == [port], name
            published = [str(p) for p in spec.get("ports", [])]
            assert not any(p.endswith(f":{port}") for p in published), name

    def test_prometheus_scrapes_every_replica_of_every_service_at_its_port(self) -> None:
        services = palette_compose_services()
        prometheus = compose()["services"]["prometheus"]
        assert prometheus["profiles"] == ["monitoring"]
        mount = "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        assert mount in prometheus["volumes"]
        config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
        [job] = config["scrape_configs"]
        [dns] = job["dns_sd_configs"]
        assert set(dns["names"]) == set(services)
        ports = {
            str(s["environment"][f"PALETTE_{n.upper()}_METRICS_PORT"]) for n, s in services.items()
        }
        assert ports == {str(dns["port"])}
