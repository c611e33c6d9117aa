"""Every variable the image, compose and the manifests set is one a settings class reads.

The names come from the settings classes themselves (tools/settings_env.py:
env_prefix + field name, or the field's validation aliases), plus the variables
boto3/botocore read (from botocore's own tables). A misspelt or stale variable
is silently ignored by pydantic-settings (extra="ignore"), so only a check like
this one finds it. Values are checked too: each service's settings class is
built from what compose and each overlay give it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from tools.env_example import (
    COMPOSE_CLI_VARIABLES,
    ENV_EXAMPLE,
    INTERPOLATION,
    SET_BY_COMPOSE,
    render,
)
from tools.settings_env import SERVICE_SETTINGS, botocore_env_names, env_names, settings_of

from tests.deploy.files import (
    COMPOSE_FILE,
    OVERLAYS,
    dockerfile,
    of_kind,
    palette_compose_services,
    palette_containers,
    rendered,
)

pytestmark = pytest.mark.deploy

AWS = botocore_env_names() | {"AWS_EC2_METADATA_DISABLED"}
# What must be set in a deployment even though the class has a default: the
# defaults are for one machine (127.0.0.1) and do not reach anything in a container.
WIRING = {"RABBITMQ_URL", "PALETTE_MONGO_URL"}
GATEWAY_WIRING = {"PALETTE_GATEWAY_HOST", "PALETTE_GATEWAY_PORT"}
ALL_PALETTE = set().union(*(env_names(cls) for cls in SERVICE_SETTINGS.values()))
EXAMPLE_LINE = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=(.*)$")


def unknown(service: str, names: set[str]) -> set[str]:
    """Names the service's settings class (and boto3) would never read."""
    return {n for n in names if n.upper() not in env_names(SERVICE_SETTINGS[service]) | AWS}


def required_unset(service: str, names: set[str]) -> set[str]:
    """Fields without a default whose variable is not among ``names``."""
    upper = {n.upper() for n in names}
    return {
        s.env
        for s in settings_of(SERVICE_SETTINGS[service])
        if s.required and not upper & set(s.env_names)
    }


def build_settings(service: str, values: Mapping[str, str], monkeypatch: Any) -> Any:
    """The service's settings built from exactly ``values`` (no .env file)."""
    for name in ALL_PALETTE:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return SERVICE_SETTINGS[service](_env_file=None)  # type: ignore[call-arg]


def example_variables() -> dict[str, str | None]:
    """Variables of .env.example: value when set, None when only shown commented out."""
    out: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = EXAMPLE_LINE.match(line)
        if match:
            out[match[1]] = None if line.startswith("#") else match[2]
    return out


class TestEnvExample:
    def test_is_what_make_env_example_writes(self) -> None:
        expected = render(COMPOSE_FILE.read_text(encoding="utf-8"))
        assert ENV_EXAMPLE.read_text(encoding="utf-8") == expected, (
            ".env.example is stale: run `make env-example`"
        )

    def test_lists_every_setting_of_every_service(self) -> None:
        listed = set(example_variables())
        for service, cls in SERVICE_SETTINGS.items():
            missing = {s.env for s in settings_of(cls)} - listed
            assert not missing, f"{service}: {missing}"

    def test_every_variable_is_a_setting_boto3_or_a_compose_variable(self) -> None:
        interpolated = set(INTERPOLATION.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
        compose_vars = {name for name, _, _ in interpolated} | set(COMPOSE_CLI_VARIABLES)
        stray = set(example_variables()) - ALL_PALETTE - AWS - compose_vars
        assert not stray

    def test_every_compose_variable_is_documented(self) -> None:
        text = COMPOSE_FILE.read_text(encoding="utf-8")
        names = {name for name, _, _ in INTERPOLATION.findall(text)}
        assert names <= set(example_variables())


class TestCompose:
    @pytest.mark.parametrize("service", list(SERVICE_SETTINGS))
    def test_environment_names_only_what_the_service_reads_and_wires_it(
        self, service: str, monkeypatch: Any
    ) -> None:
        env = palette_compose_services()[service]["environment"]
        assert not unknown(service, set(env))
        assert not required_unset(service, set(env))
        wiring = (
            WIRING
            | {"PALETTE_S3_ENDPOINT_URL"}
            | (GATEWAY_WIRING if service == "gateway" else set())
        )
        assert wiring <= set(env)
        assert wiring <= set(SET_BY_COMPOSE) | {"PALETTE_S3_ENDPOINT_URL"} | WIRING
        literal = {k: str(v) for k, v in env.items() if v is not None and "$" not in str(v)}
        settings = build_settings(service, literal, monkeypatch)
        assert settings.rabbitmq_url.startswith("amqp://") or "${" in env["RABBITMQ_URL"]
        assert settings.mongo_url.startswith("mongodb://mongodb:27017/")


class TestKubernetes:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_each_container_gets_only_what_its_service_reads_and_all_it_needs(
        self, overlay: str, monkeypatch: Any
    ) -> None:
        docs = rendered(overlay)
        maps = {d["metadata"]["name"]: d.get("data") or {} for d in of_kind(docs, "ConfigMap")}
        for service, container in palette_containers(docs):
            values: dict[str, str] = {}
            for source in container.get("envFrom", []):
                values |= maps[source["configMapRef"]["name"]]
            explicit = {v["name"]: v.get("value") for v in container.get("env", [])}
            names = set(values) | set(explicit)
            assert not unknown(service, names), service
            assert not required_unset(service, names), service
            needed = WIRING | (
                GATEWAY_WIRING | {"PALETTE_GATEWAY_JWT_SECRET"} if service == "gateway" else set()
            )
            assert needed <= names, (service, needed - names)
            values |= {k: v for k, v in explicit.items() if v is not None}
            settings = build_settings(service, values, monkeypatch)
            if service == "gateway":
                assert settings.host == "0.0.0.0"
                port = container["ports"][0]["containerPort"]
                assert settings.port == port


class TestImage:
    def test_image_environment_sets_only_what_the_services_read(self) -> None:
        names = set()
        for instruction in dockerfile():
            if instruction.stage == "runtime" and instruction.keyword == "ENV":
                names |= {w.split("=", 1)[0] for w in instruction.words()}
        palette = {n for n in names if n.startswith(("PALETTE_", "RABBITMQ_", "AWS_"))}
        assert palette, names
        assert palette <= ALL_PALETTE | AWS
