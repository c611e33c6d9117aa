"""deploy/: every overlay renders with kustomize and validates offline against the schemas.

Built-in kinds are validated by kubernetes-validate (the Kubernetes OpenAPI
schemas it ships, strict: unknown fields are errors) for the oldest and newest
Kubernetes versions named below; KEDA's ScaledObject and TriggerAuthentication
by cloudcoil-models-keda, pydantic models generated from KEDA's CRD schemas
(also strict: a field the model drops is an error). No cluster is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from palette.common.topology import Queues
from tests.deploy.files import DEPLOY, OVERLAYS, of_kind, palette_containers, rendered

pytestmark = pytest.mark.deploy

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Secrets the production overlay expects to exist (created out of band, never in git).
OUT_OF_BAND = {"production": {"plot-palette-secrets", "plot-palette-keda-rabbitmq"}}
IRSA = "eks.amazonaws.com/role-arn"


def _dropped(given: Any, kept: Any, path: str = "") -> Iterator[str]:
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(kept, dict) or key not in kept:
                yield f"{path}/{key}"
            else:
                yield from _dropped(value, kept[key], f"{path}/{key}")
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(given, kept, strict=False)):
            yield from _dropped(a, b, f"{path}/{i}")


def validate_keda(doc: dict[str, Any]) -> list[str]:
    """Problems of a keda.sh resource by KEDA's generated models (unknown fields included)."""
    from cloudcoil.models.keda import v1alpha1 as keda
    from pydantic import ValidationError

    model = getattr(keda, doc["kind"], None)
    if model is None or doc["apiVersion"] != "keda.sh/v1alpha1":
        return [f"no KEDA model for {doc['apiVersion']} {doc['kind']}"]
    try:
        parsed = model.model_validate(doc)
    except ValidationError as exc:
        return [str(exc)]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"unknown field {p}" for p in _dropped(doc, kept)]


@pytest.mark.parametrize("overlay", OVERLAYS)
class TestRendersAndValidates:
    @pytest.mark.parametrize("version", K8S_VERSIONS)
    def test_every_builtin_resource_validates_strictly(self, overlay: str, version: str) -> None:
        problems = []
        for doc in rendered(overlay):
            if doc["apiVersion"].startswith("keda.sh/"):
                continue
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{where}: {exc.message} at {list(exc.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{where}: no schema for {doc['apiVersion']} in {version}")
        assert not problems, "\n".join(problems)

    def test_keda_resources_validate_against_kedas_models(self, overlay: str) -> None:
        docs = [d for d in rendered(overlay) if d["apiVersion"].startswith("keda.sh/")]
        assert {d["kind"] for d in docs} == {"ScaledObject", "TriggerAuthentication"}
        problems = {d["metadata"]["name"]: validate_keda(d) for d in docs}
        assert not any(problems.values()), problems

    def test_every_reference_to_a_config_map_or_secret_resolves(self, overlay: str) -> None:
        docs = rendered(overlay)
        present = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        missing: set[str] = set()
        for _, container in palette_containers(docs):
            for source in container.get("envFrom", []):
                ref = source["configMapRef"]["name"]
                assert ("ConfigMap", ref) in present, ref
            for var in container.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if ref is None:
                    continue
                secret = present.get(("Secret", ref["name"]))
                if secret is None:
                    missing.add(ref["name"])
                else:
                    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
                    assert ref["key"] in keys, f"{ref['name']} has no key {ref['key']}"
        for auth in of_kind(docs, "TriggerAuthentication"):
            for target in auth["spec"]["secretTargetRef"]:
                if ("Secret", target["name"]) not in present:
                    missing.add(target["name"])
        assert missing == OUT_OF_BAND.get(overlay, set())


@pytest.mark.parametrize("overlay", OVERLAYS)
class TestWorkloads:
    def test_every_service_has_probes_resources_and_runs_as_non_root(self, overlay: str) -> None:
        containers = palette_containers(rendered(overlay))
        assert {name for name, _ in containers} == {
            "gateway",
            "scheduler",
            "generator",
            "accounting",
        }
        for name, c in containers:
            assert {"livenessProbe", "readinessProbe"} <= set(c), name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, kind)
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        for dep in of_kind(rendered(overlay), "Deployment"):
            pod = dep["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER

    def test_gateway_probes_health_and_ready_and_is_exposed(self, overlay: str) -> None:
        docs = rendered(overlay)
        [gateway] = [c for name, c in palette_containers(docs) if name == "gateway"]
        assert gateway["livenessProbe"]["httpGet"]["path"] == "/health"
        assert gateway["readinessProbe"]["httpGet"]["path"] == "/ready"
        [service] = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "gateway"]
        [ingress] = of_kind(docs, "Ingress")
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": "gateway"}

    def test_every_service_serves_metrics_where_prometheus_is_told_to_look(
        self, overlay: str
    ) -> None:
        docs = rendered(overlay)
        maps = {d["metadata"]["name"]: d.get("data") or {} for d in of_kind(docs, "ConfigMap")}
        pods = {d["metadata"]["name"]: d["spec"]["template"] for d in of_kind(docs, "Deployment")}
        for name, c in palette_containers(docs):
            values: dict[str, str] = {}
            for source in c.get("envFrom", []):
                values |= maps[source["configMapRef"]["name"]]
            port = int(values[f"PALETTE_{name.upper()}_METRICS_PORT"])
            assert port > 0, name
            assert {"name": "metrics", "containerPort": port} in c["ports"], name
            annotations = pods[name]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true", name
            assert annotations["prometheus.io/port"] == str(port), name
            assert annotations["prometheus.io/path"] == "/metrics", name

    def test_message_services_probe_their_broker_connection(self, overlay: str) -> None:
        for name, c in palette_containers(rendered(overlay)):
            if name != "gateway":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    command = c[probe]["exec"]["command"]
                    assert command == ["python", "/opt/palette/probe.py", "amqp"], name

    def test_every_deployment_has_a_disruption_budget(self, overlay: str) -> None:
        docs = rendered(overlay)
        budgets = [
            b["spec"]["selector"]["matchLabels"] for b in of_kind(docs, "PodDisruptionBudget")
        ]
        for dep in of_kind(docs, "Deployment"):
            labels = dep["spec"]["template"]["metadata"]["labels"]
            assert any(sel.items() <= labels.items() for sel in budgets), dep["metadata"]["name"]

    def test_generators_scale_on_the_partition_queue_within_sane_bounds(self, overlay: str) -> None:
        docs = rendered(overlay)
        [scaled] = of_kind(docs, "ScaledObject")
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] == "generator"
        queues = [t["metadata"]["queueName"] for t in spec["triggers"]]
        assert queues[0] == Queues.GENERATE_PARTITION.name
        assert set(queues) <= {q.name for q in Queues.all()}
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= 50
        [generator] = [
            d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "generator"
        ]
        assert "replicas" not in generator["spec"], "KEDA owns the generators' replica count"

    def test_aws_is_reached_by_service_account_roles_never_keys(self, overlay: str) -> None:
        docs = rendered(overlay)
        accounts = {a["metadata"]["name"]: a for a in of_kind(docs, "ServiceAccount")}
        for dep in of_kind(docs, "Deployment"):
            account = accounts[dep["spec"]["template"]["spec"]["serviceAccountName"]]
            assert account["metadata"]["annotations"][IRSA].startswith("arn:aws:iam::")
        text = yaml.safe_dump_all(docs)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            assert key not in text, key


class TestOperatorExamples:
    def test_examples_show_the_operators_resources_and_no_kustomization_applies_them(
        self,
    ) -> None:
        examples = DEPLOY / "examples"
        kinds = set()
        for path in examples.glob("*.yaml"):
            kinds |= {
                (d["apiVersion"], d["kind"]) for d in yaml.safe_load_all(path.read_text()) if d
            }
        assert ("rabbitmq.com/v1beta1", "RabbitmqCluster") in kinds
        assert ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity") in kinds
        assert ("monitoring.coreos.com/v1", "PodMonitor") in kinds
        for kustomization in DEPLOY.rglob("kustomization.yaml"):
            data = yaml.safe_load(kustomization.read_text())
            for entry in data.get("resources", []):
                target = (kustomization.parent / entry).resolve()
                assert examples.resolve() not in (target, *target.parents), kustomization

    def test_the_pod_monitor_scrapes_the_metrics_port_of_every_service(self) -> None:
        [monitor] = [
            d
            for d in yaml.safe_load_all(
                (DEPLOY / "examples/prometheus-podmonitor.yaml").read_text()
            )
            if d
        ]
        [selected] = monitor["spec"]["selector"]["matchExpressions"]
        assert selected["key"] == "app.kubernetes.io/name"
        assert set(selected["values"]) == {"gateway", "scheduler", "accounting", "generator"}
        assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]

    def test_external_services_point_where_the_examples_create_them(self) -> None:
        externals = {
            s["metadata"]["name"]: s["spec"]["externalName"]
            for s in of_kind(rendered("production"), "Service")
            if s["spec"].get("type") == "ExternalName"
        }
        assert set(externals) == {"rabbitmq", "mongodb"}
        text = "".join(p.read_text() for p in Path(DEPLOY / "examples").glob("*.yaml"))
        for host in externals.values():
            name, namespace = host.split(".")[:2]
            assert f"name: {name.removesuffix('-svc')}" in text
            assert f"namespace: {namespace}" in text
