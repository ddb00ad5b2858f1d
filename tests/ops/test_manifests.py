"""The Kubernetes manifests, rendered by a pinned kustomize and validated offline.

Every rendered object is validated against a schema: core kinds against the Kubernetes OpenAPI
schemas bundled in ``kubernetes-validate`` (strict: unknown fields fail), custom resources against
the JSON schemas committed in deploy/k8s/schemas/. A kind with neither fails the test: nothing is
skipped. Then the content is checked against the code: topics, settings, probes, consumer groups.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from contentmatch_shared.settings import Settings
from contentmatch_shared.topics import all_specs

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
SERVICES = ("ingest", "fingerprint", "match", "report", "delivery")
HTTP_SERVICES = ("ingest", "report")  # scaled by HPA on CPU
PUBLIC_APIS = ("ingest", "report", "delivery")  # reached through the ingress controller
MATCH_SHARDS = 2  # the base's CM_MATCH_SHARDS
# Scaled by KEDA: deployment -> group (match is the merger; each shard has a group of its own).
WORKERS = {
    "fingerprint": "fingerprint",
    "match": "match-merger",
    **{
        f"match-shard-{k}-of-{MATCH_SHARDS}": f"match-shard-{k}-of-{MATCH_SHARDS}"
        for k in range(MATCH_SHARDS)
    },
}
# Secrets prod expects to exist before it is applied (deploy/README.md); dev generates its own.
PROD_EXTERNAL_SECRETS = {"contentmatch-secrets", "contentmatch-report-signing"}
# Custom resources: (apiVersion, kind) -> the committed schema.
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): "kafka.strimzi.io_v1beta2_kafka.json",
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): "kafka.strimzi.io_v1beta2_kafkanodepool.json",
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafka.strimzi.io_v1beta2_kafkatopic.json",
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): "kafka.strimzi.io_v1beta2_kafkauser.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
}


def kustomize_binary() -> str:
    explicit = os.environ.get("CM_KUSTOMIZE")
    if explicit:
        return explicit
    cache_dir = Path(os.environ.get("CM_CACHE_DIR", Path.home() / ".cache" / "contentmatch"))
    binary = cache_dir / "bin" / "kustomize"
    if not binary.exists():
        pytest.fail(f"{binary} missing: run scripts/infra/install_ops_tools.sh")
    return str(binary)


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [kustomize_binary(), "build", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(obj: dict[str, Any]) -> None:
    """Raises when ``obj`` is invalid or its kind has no schema at all."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_SCHEMAS:
        crd_validator(*key).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def of_kind(objs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def config_map(objs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    (cm,) = [
        o
        for o in objs
        if o["kind"] == "ConfigMap" and "contentmatch-config" in o["metadata"]["name"]
    ]
    return cm["data"]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def objs(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(overlay)


# --- schema validation ------------------------------------------------------------------------


def test_every_rendered_object_validates_against_its_schema(objs: tuple[dict, ...]) -> None:
    failures = []
    for obj in objs:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            validate(obj)
        except SchemaNotFoundError as exc:
            failures.append(f"{where}: no schema ({exc.message})")
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.absolute_path)
            failures.append(f"{where}: {path}: {exc.message}")
    assert not failures, "\n".join(failures)
    assert len(objs) > 30


def test_validation_rejects_what_it_should(objs: tuple[dict, ...]) -> None:
    """Proves each validator really runs (a vacuous pass would hide everything)."""
    by_kind = {o["kind"]: o for o in objs}
    bad = []
    deployment = copy.deepcopy(by_kind["Deployment"])
    deployment["spec"]["replicas"] = "two"
    bad.append(deployment)
    typo = copy.deepcopy(by_kind["Deployment"])
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    bad.append(typo)
    topic = copy.deepcopy(by_kind["KafkaTopic"])
    topic["spec"]["partitons"] = 3
    bad.append(topic)
    scaled = copy.deepcopy(by_kind["ScaledObject"])
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 20  # KEDA wants strings
    bad.append(scaled)
    monitor = copy.deepcopy(by_kind["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    bad.append(monitor)
    pool = copy.deepcopy(by_kind["KafkaNodePool"])
    pool["spec"]["roles"] = ["zookeeper"]
    bad.append(pool)
    user = copy.deepcopy(by_kind["KafkaUser"])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Produce"]
    bad.append(user)
    trigger_auth = copy.deepcopy(by_kind["TriggerAuthentication"])
    del trigger_auth["spec"]["secretTargetRef"][0]["key"]
    bad.append(trigger_auth)
    for obj in bad:
        with pytest.raises(jsonschema.ValidationError):
            validate(obj)
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(SchemaNotFoundError):
        validate(unknown)


def test_committed_crd_schemas_are_all_used() -> None:
    committed = {p.name for p in SCHEMAS.glob("*.json")}
    assert committed == set(CRD_SCHEMAS.values())
    rendered = {(o["apiVersion"], o["kind"]) for overlay in OVERLAYS for o in render(overlay)}
    assert set(CRD_SCHEMAS) <= rendered


# --- generated files and the topic registry -----------------------------------------------------


def _generate_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_generate", K8S / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_manifests_are_current() -> None:
    for path, text in _generate_module().rendered().items():
        assert path.read_text() == text, f"{path} is stale: run deploy/k8s/generate.py"


def test_kafka_topics_are_the_topic_registry(objs: tuple[dict, ...], overlay: str) -> None:
    topics = {t["spec"]["topicName"]: t for t in of_kind(objs, "KafkaTopic").values()}
    registry = {s.name: s for s in all_specs()}
    assert set(topics) == set(registry)
    (kafka,) = of_kind(objs, "Kafka")
    for name, spec in registry.items():
        topic = topics[name]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka
        assert topic["spec"]["config"]["cleanup.policy"] == spec.cleanup_policy, name
        if spec.retention_ms is not None:
            assert topic["spec"]["config"]["retention.ms"] == spec.retention_ms, name
        if spec.partitions is not None:
            assert topic["spec"]["partitions"] == spec.partitions, name
    assert topics["works.registry"]["spec"]["config"]["cleanup.policy"] == "compact"
    assert all(
        topics[f"{s.name}.dlq"]["spec"]["partitions"] == 1
        for s in registry.values()
        if f"{s.name}.dlq" in topics
    )
    nodes = sum(p["spec"]["replicas"] for p in of_kind(objs, "KafkaNodePool").values())
    assert all(t["spec"]["replicas"] <= nodes for t in topics.values())
    expected_partitions = int(config_map(objs)["CM_TOPIC_PARTITIONS"])
    for name, topic in topics.items():
        if registry[name].partitions is None:
            assert topic["spec"]["partitions"] == expected_partitions, name


# --- workloads ------------------------------------------------------------------------------------


def test_one_deployment_and_service_per_service(objs: tuple[dict, ...]) -> None:
    deployments = of_kind(objs, "Deployment")
    services = of_kind(objs, "Service")
    settings_cm = config_map(objs)
    for name in SERVICES:
        c = container(deployments[name])
        assert c["args"] == ["serve", name]
        port = int(settings_cm[f"CM_{name.upper()}_PORT"])
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        svc = services[name]
        assert svc["spec"]["selector"].items() <= (
            deployments[name]["spec"]["template"]["metadata"]["labels"].items()
        )
        assert svc["spec"]["ports"][0]["targetPort"] == "http"
    images = {container(d)["image"] for n, d in deployments.items() if n in SERVICES}
    assert len(images) == 1, "one image, the role chosen by `serve <service>`"


def test_probes_resources_and_security(objs: tuple[dict, ...]) -> None:
    for name, deployment in of_kind(objs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (name, kind)
        assert c["readinessProbe"] and c["livenessProbe"], name
        if name in SERVICES:
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
            assert pod["automountServiceAccountToken"] is False, name


def test_settings_come_from_configmaps_and_secrets(objs: tuple[dict, ...], overlay: str) -> None:
    fields = {f"CM_{f.upper()}" for f in Settings.model_fields}
    data = config_map(objs)
    assert set(data) <= fields, set(data) - fields
    secret_keys = {
        "CM_S3_ACCESS_KEY",
        "CM_S3_SECRET_KEY",
        "CM_ADMIN_KEY",
        "CM_REPORT_SIGNING_KEY",
        "CM_UPLOAD_TOKEN_SECRET",
    }
    assert "CM_KAFKA_PASSWORD" not in data
    assert not set(data) & secret_keys, "secrets never go into a ConfigMap"
    assert data["CM_ENVIRONMENT"] == ("development" if overlay == "dev" else "production")
    secrets = {s["metadata"]["name"]: s for s in of_kind(objs, "Secret").values()}
    referenced = set()
    for name in SERVICES:
        c = container(of_kind(objs, "Deployment")[name])
        assert [e["configMapRef"]["name"] for e in c["envFrom"]] == [
            cm for cm in of_kind(objs, "ConfigMap") if cm.startswith("contentmatch-config")
        ]
        for env in c["env"]:
            assert env["name"] in fields, env["name"]
            if env["name"] in secret_keys:
                ref = env["valueFrom"]["secretKeyRef"]
                referenced.add(ref["name"])
                if overlay == "dev":
                    assert ref["key"] in secrets[ref["name"]]["data"]
    if overlay == "prod":
        assert not secrets, "prod renders no Secret: they are created outside git"
        assert referenced == PROD_EXTERNAL_SECRETS
        report_env = {e["name"] for e in container(of_kind(objs, "Deployment")["report"])["env"]}
        assert "CM_REPORT_SIGNING_KEY" in report_env


def test_autoscaling_follows_the_design(objs: tuple[dict, ...]) -> None:
    hpas = of_kind(objs, "HorizontalPodAutoscaler")
    scaled = of_kind(objs, "ScaledObject")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == set(HTTP_SERVICES)
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == set(WORKERS)
    partitions = {
        t["spec"]["topicName"]: t["spec"]["partitions"]
        for t in of_kind(objs, "KafkaTopic").values()
    }
    bootstrap = config_map(objs)["CM_KAFKA_BOOTSTRAP"]
    for so in scaled.values():
        target = so["spec"]["scaleTargetRef"]["name"]
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert meta["consumerGroup"] == WORKERS[target]
            assert meta["bootstrapServers"] == bootstrap
            # More replicas than partitions would sit idle.
            assert so["spec"]["maxReplicaCount"] <= partitions[meta["topic"]]
    pdbs = of_kind(objs, "PodDisruptionBudget")
    assert pdbs["match"]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "match"


def test_one_match_deployment_per_shard_and_one_budget_per_pod(objs: tuple[dict, ...]) -> None:
    deployments = of_kind(objs, "Deployment")
    assert int(config_map(objs)["CM_MATCH_SHARDS"]) == MATCH_SHARDS
    served = {}
    for name, deployment in deployments.items():
        env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
        if name == "match" or name.startswith("match-shard-"):
            assert container(deployment)["args"] == ["serve", "match"]
            served[name] = (
                env.get("CM_MATCH_SHARDS"),
                env["CM_MATCH_SERVE_SHARDS"],
                env.get("CM_MATCH_MERGER"),
            )
    assert served == {
        "match": (None, "[]", None),
        **{
            f"match-shard-{k}-of-{MATCH_SHARDS}": (str(MATCH_SHARDS), f"[{k}]", "false")
            for k in range(MATCH_SHARDS)
        },
    }
    # A pod under two budgets cannot be evicted at all: each match pod is under exactly one.
    budgets = of_kind(objs, "PodDisruptionBudget")
    for name in served:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        under = [
            b for b, pdb in budgets.items()
            if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]  # fmt: skip
        assert under == [name], (name, under)


def test_service_monitor_scrapes_every_service(objs: tuple[dict, ...]) -> None:
    (monitor,) = of_kind(objs, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}
    for name in SERVICES:
        svc = of_kind(objs, "Service")[name]
        assert selector.items() <= svc["metadata"]["labels"].items(), name
        assert endpoint_ports & {p["name"] for p in svc["spec"]["ports"]}, name
    rules = of_kind(objs, "PrometheusRule")["contentmatch"]["spec"]
    assert rules == yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())


# --- network policies ---------------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        ok = {
            "In": present and value in expr.get("values", []),
            "NotIn": not present or value not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def _policies_for(objs: tuple[dict, ...], name: str) -> Iterator[dict[str, Any]]:
    labels = of_kind(objs, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    for policy in of_kind(objs, "NetworkPolicy").values():
        if _selects(policy["spec"]["podSelector"], labels):
            yield policy


def test_network_policies_allow_only_the_designed_flows(objs: tuple[dict, ...]) -> None:
    for name in SERVICES:
        policies = list(_policies_for(objs, name))
        deny = [p for p in policies if not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in deny), name
        ingress_from = set()
        for policy in policies:
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), f"{name}: an ingress rule open to every source"
                assert rule["ports"] == [{"port": "http", "protocol": "TCP"}], name
                for peer in rule["from"]:
                    ingress_from.add(
                        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    )
        expected = {"monitoring", "ingress-nginx"} if name in PUBLIC_APIS else {"monitoring"}
        assert ingress_from == expected, name
        egress_ports = set()
        for policy in policies:
            for rule in policy["spec"].get("egress", []):
                assert rule.get("ports"), f"{name}: an egress rule open on every port"
                egress_ports |= {p["port"] for p in rule["ports"]}
        assert 9092 in egress_ports and 53 in egress_ports, name
    (kafka,) = of_kind(objs, "Kafka").values()
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["networkPolicyPeers"], "brokers reachable only from the services and KEDA"


def test_match_keeps_replicas_through_disruptions(objs: tuple[dict, ...], overlay: str) -> None:
    for name in ("match", *(f"match-shard-{k}-of-{MATCH_SHARDS}" for k in range(MATCH_SHARDS))):
        pdb = of_kind(objs, "PodDisruptionBudget")[name]["spec"]
        if overlay == "prod":
            scaled = of_kind(objs, "ScaledObject")[name]["spec"]
            assert 1 <= pdb["minAvailable"] < scaled["minReplicaCount"], name


# --- container build ------------------------------------------------------------------------------


def test_containerfile_builds_one_nonroot_image() -> None:
    text = (REPO / "deploy" / "container" / "Containerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "uv sync --frozen" in text
    for package in ("ffmpeg", "libchromaprint1"):
        assert package in text
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1].split(":")[0] == "10001"
    assert 'ENTRYPOINT ["contentmatch"]' in text


# --- Kafka authentication and ACLs ------------------------------------------------------------


def test_every_kafka_client_authenticates_as_its_own_principal(
    objs: tuple[dict, ...], overlay: str
) -> None:
    (kafka,) = of_kind(objs, "Kafka").values()
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert "userOperator" in kafka["spec"]["entityOperator"]
    assert config_map(objs)["CM_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config_map(objs)["CM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    users = of_kind(objs, "KafkaUser")
    secrets = {s["metadata"]["name"]: s for s in of_kind(objs, "Secret").values()}
    for name in SERVICES:
        env = {e["name"]: e for e in container(of_kind(objs, "Deployment")[name])["env"]}
        principal = env["CM_KAFKA_USERNAME"]["value"]
        assert principal == f"svc-{name}"
        # Strimzi's User Operator writes the Secret named after the KafkaUser.
        assert env["CM_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": principal,
            "key": "password",
        }
        assert users[principal]["spec"]["authentication"]["type"] == "scram-sha-512"
        assert ("CM_UPLOAD_TOKEN_SECRET" in env) == (name in ("ingest", "fingerprint"))
    # KEDA reads lag as its own principal: Describe only, password from the Secret it uses.
    keda = users["keda"]
    ops = {op for acl in keda["spec"]["authorization"]["acls"] for op in acl["operations"]}
    assert ops == {"Describe"}
    password_secret = keda["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
    auths = of_kind(objs, "TriggerAuthentication")
    for so in of_kind(objs, "ScaledObject").values():
        for trigger in so["spec"]["triggers"]:
            refs = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
            assert {r["parameter"] for r in refs} == {"sasl", "username", "password"}
            assert {r["name"] for r in refs} == {password_secret["name"]}
            if overlay == "dev":
                data = secrets[password_secret["name"]]["data"]
                assert {r["key"] for r in refs} <= set(data)
                assert base64.b64decode(data["sasl"]) == b"scram_sha512"


def test_the_platform_example_may_only_publish_uploads() -> None:
    (user,) = yaml.safe_load_all((K8S / "examples" / "platform-kafkauser.yaml").read_text())
    validate(user)
    assert user["metadata"]["name"].startswith("platform-")
    assert user["spec"]["authorization"]["acls"] == [
        {
            "resource": {"type": "topic", "name": "uploads.submitted", "patternType": "literal"},
            "operations": ["Write", "Describe"],
        }
    ]
