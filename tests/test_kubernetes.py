"""The Kubernetes manifests, as `make k8s` renders them: what a cluster would run.

Rendered by ``make k8s`` itself (kubectl's kustomize: ``KUBECTL``, else
``kubectl`` on PATH); schemas, KEDA's schema and checkov are
``make k8s-check``'s (deploy/kubernetes/check/check.py). Here: that the
objects say what Nexus needs, against Nexus's own settings.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rq.queue import Queue

from nexus.config import Settings
from tests.support import REPO_ROOT

KUBECTL = os.environ.get("KUBECTL", "kubectl")
OVERLAYS = ("dev", "prod")
APP_PODS = ("nexus-web", "nexus-worker", "nexus-migrate")

pytestmark = pytest.mark.skipif(
    shutil.which(KUBECTL) is None,
    reason=f"{KUBECTL} is not installed (Debian: apt-get install kubernetes-client); "
    "make k8s-check runs these in CI",
)


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        ["make", "--silent", "k8s", f"OVERLAY={overlay}", f"KUBECTL={KUBECTL}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in rendered(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_specs(overlay: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in rendered(overlay):
        if item["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield item["metadata"]["name"], item["spec"]["template"]["spec"]


def config(overlay: str) -> dict[str, str]:
    data: dict[str, str] = find(overlay, "ConfigMap", "nexus-config")["data"]
    return data


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def test_make_k8s_refuses_an_unknown_overlay() -> None:
    done = subprocess.run(
        ["make", "--silent", "k8s", "OVERLAY=staging"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no overlay 'staging': dev or prod" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_namespaced_and_labelled_as_nexus(overlay: str) -> None:
    namespace = {"dev": "nexus-dev", "prod": "nexus"}[overlay]
    for item in rendered(overlay):
        metadata = item["metadata"]
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "nexus", metadata["name"]
        if item["kind"] != "Namespace":
            assert metadata["namespace"] == namespace, metadata["name"]
    labels = find(overlay, "Namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_probes_ready_on_healthz_alive_on_livez(overlay: str) -> None:
    pod = find(overlay, "Deployment", "nexus-web")["spec"]["template"]["spec"]
    [web] = pod["containers"]
    assert web["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert web["startupProbe"]["httpGet"]["path"] == "/livez"
    assert web["ports"] == [{"name": "http", "containerPort": 5000}]
    assert env_of(web)["GUNICORN_BIND"] == "0.0.0.0:5000"
    # The readiness probe waits longer than /healthz's own deadline.
    assert web["readinessProbe"]["timeoutSeconds"] > Settings.model_fields["health_timeout"].default
    service = find(overlay, "Service", "nexus-web")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "nexus-web"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_drains_before_it_is_killed(overlay: str) -> None:
    pod = find(overlay, "Deployment", "nexus-web")["spec"]["template"]["spec"]
    [web] = pod["containers"]
    pause = web["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    drain = int(config(overlay)["GUNICORN_GRACEFUL_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > int(pause[1]) + drain
    strategy = find(overlay, "Deployment", "nexus-web")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_finish_their_job_before_they_are_killed(overlay: str) -> None:
    pod = find(overlay, "Deployment", "nexus-worker")["spec"]["template"]["spec"]
    [worker] = pod["containers"]
    assert worker["command"] == ["flask", "--app", "nexus", "worker"]
    grace = int(config(overlay)["NEXUS_WORKER_SHUTDOWN_GRACE"])
    assert grace == Settings.model_fields["worker_shutdown_grace"].default
    assert pod["terminationGracePeriodSeconds"] > grace
    assert worker["livenessProbe"]["exec"]["command"] == [
        "flask", "--app", "nexus", "worker-health",
    ]  # fmt: skip
    # Prometheus reaches the worker's own metrics server.
    assert config(overlay)["NEXUS_WORKER_METRICS_ADDRESS"] == "0.0.0.0"  # noqa: S104
    assert worker["ports"] == [
        {"name": "metrics", "containerPort": int(config(overlay)["NEXUS_WORKER_METRICS_PORT"])}
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_runs_as_the_owner_and_new_pods_wait_for_it(overlay: str) -> None:
    job = find(overlay, "Job", "nexus-migrate")["spec"]["template"]["spec"]
    [migrate] = job["containers"]
    assert migrate["command"] == ["flask", "--app", "nexus", "db", "upgrade"]
    assert env_of(migrate)["MIGRATION_DATABASE_URL_FILE"].startswith("/run/secrets/nexus/")
    assert job["restartPolicy"] == "Never"
    for name in ("nexus-web", "nexus-worker"):
        pod = find(overlay, "Deployment", name)["spec"]["template"]["spec"]
        [wait] = pod["initContainers"]
        assert wait["command"][:5] == ["flask", "--app", "nexus", "db", "wait"], name
        assert wait["image"] == pod["containers"][0]["image"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_restricted(overlay: str) -> None:
    for name, pod in pod_specs(overlay):
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{name}/{container['name']}"
            own = container["securityContext"]
            assert own["readOnlyRootFilesystem"] is True, where
            assert own["allowPrivilegeEscalation"] is False, where
            assert own["capabilities"] == {"drop": ["ALL"]}, where
            resources = container["resources"]
            assert set(resources["requests"]) == {"cpu", "memory"}, where
            assert set(resources["limits"]) == {"cpu", "memory"}, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_app_pods_write_only_to_their_emptydirs(overlay: str) -> None:
    for name, pod in pod_specs(overlay):
        if name not in APP_PODS:
            continue
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], name
            for mount in mounts.values():
                volume = volumes[mount["name"]]
                assert "emptyDir" in volume or mount.get("readOnly") is True, (name, mount)
    web = find(overlay, "Deployment", "nexus-web")["spec"]["template"]["spec"]
    [container] = web["containers"]
    metrics_dir = env_of(container)["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics_dir in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_reach_containers_as_files_only(overlay: str) -> None:
    for name, pod in pod_specs(overlay):
        if name not in APP_PODS:
            continue
        [secret_volume] = [v for v in pod["volumes"] if "secret" in v]
        items = secret_volume["secret"].get("items")
        keys = {i["key"] for i in items} if items else None  # None: every key
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            where = f"{name}/{container['name']}"
            env = env_of(container)
            for item in container.get("env", []):
                assert "valueFrom" not in item, where  # never a secret in the environment
            for secret in ("DATABASE_URL", "REDIS_URL", "NEXUS_SECRET_KEY", "NEXUS_JWT_SECRET"):
                assert secret not in env, where
                path = env[f"{secret}_FILE"]
                mount = next(
                    m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")
                )
                assert mount["name"] == secret_volume["name"], where
                assert keys is None or path.rsplit("/", 1)[1] in keys, where
        # Only the migration may connect as the owner role.
        if name != "nexus-migrate":
            assert keys is not None, name
            assert "MIGRATION_DATABASE_URL" not in keys, name


def test_dev_secrets_carry_every_key_the_pods_read() -> None:
    secret = find("dev", "Secret", "nexus-secrets")
    wanted = {"MIGRATION_DATABASE_URL", "REDIS_PASSWORD", "POSTGRES_PASSWORD"}
    for _, pod in pod_specs("dev"):
        for volume in pod["volumes"]:
            wanted |= {item["key"] for item in volume.get("secret", {}).get("items", [])}
    assert wanted <= set(secret["data"])
    # Production's Secret is made outside the repository.
    assert not [o for o in rendered("prod") if o["kind"] == "Secret"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_workers_on_every_rq_queue(overlay: str) -> None:
    scaled = find(overlay, "ScaledObject", "nexus-worker")["spec"]
    assert scaled["scaleTargetRef"] == {"name": "nexus-worker"}
    assert find(overlay, "Deployment", "nexus-worker")
    assert scaled["minReplicaCount"] >= 1  # running jobs leave the lists
    queues = [
        Settings.model_fields[f"queue_{level}"].default for level in ("high", "default", "low")
    ]
    lists = {trigger["metadata"]["listName"] for trigger in scaled["triggers"]}
    assert lists == {f"{Queue.redis_queue_namespace_prefix}{name}" for name in queues}
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "redis"
        assert int(trigger["metadata"]["listLength"]) > 0
        auth = trigger["authenticationRef"]["name"]
        assert find(overlay, "TriggerAuthentication", auth)
    # Scale-in one pod at a time, after a quiet spell: each one drains first.
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert behavior["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    if overlay == "dev":
        # The dev overlay's own Redis.
        redis = find("dev", "Service", "nexus-redis")["spec"]["ports"][0]["port"]
        assert {t["metadata"]["address"] for t in scaled["triggers"]} == {f"nexus-redis:{redis}"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_autoscales_and_keeps_serving_through_disruptions(overlay: str) -> None:
    hpa = find(overlay, "HorizontalPodAutoscaler", "nexus-web")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "nexus-web"
    assert hpa["minReplicas"] <= hpa["maxReplicas"]
    budget = find(overlay, "PodDisruptionBudget", "nexus-web")["spec"]
    assert budget["selector"]["matchLabels"] == {"app.kubernetes.io/name": "nexus-web"}
    if overlay == "prod":
        assert hpa["minReplicas"] >= 2
        assert budget["minAvailable"] >= 1
        images = {c["image"] for _, pod in pod_specs("prod") for c in pod["containers"]}
        assert all("@sha256:" in image for image in images)  # pinned by digest


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_nexus_pods_reach_postgresql_and_redis(overlay: str) -> None:
    policies = [o for o in rendered(overlay) if o["kind"] == "NetworkPolicy"]
    deny = next(p for p in policies if p["spec"]["podSelector"] == {})
    assert deny["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny["spec"]
    for component, port in (("postgresql", 5432), ("redis", 6379)):
        [policy] = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels")
            == {"app.kubernetes.io/component": component}
        ]
        sources = [
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            for rule in policy["spec"]["ingress"]
            for peer in rule["from"]
            if "podSelector" in peer
        ]
        assert sorted(sources) == sorted(APP_PODS), component
        assert all(
            rule["ports"] == [{"port": port, "protocol": "TCP"}]
            for rule in policy["spec"]["ingress"]
        )
    if overlay == "dev":
        # The data services the policies guard carry the labels they select.
        for name, component in (("nexus-postgresql", "postgresql"), ("nexus-redis", "redis")):
            labels = find("dev", "StatefulSet", name)["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/component"] == component


@pytest.mark.parametrize("container", ["web", "worker"])
def test_the_dev_pods_settings_are_valid_nexus_settings(container: str, tmp_path: Path) -> None:
    # What a dev pod would start with: the ConfigMap, its own env, and the
    # Secret's keys as files where its *_FILE variables say.
    secret = find("dev", "Secret", "nexus-secrets")["data"]
    pod = find("dev", "Deployment", f"nexus-{container}")["spec"]["template"]["spec"]
    [spec] = pod["containers"]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(config("dev"))
    for name, value in env_of(spec).items():
        env[name] = value
        if name.endswith("_FILE"):
            path = tmp_path / value.rsplit("/", 1)[1]
            path.write_bytes(base64.b64decode(secret[path.name]))
            env[name] = str(path)
    env["NEXUS_SECRETS_DIR"] = str(tmp_path)  # the ConfigMap names the pod's mount
    env["FLASK_SKIP_DOTENV"] = "1"
    checked = subprocess.run(
        [sys.executable, "-c", "from nexus.config import load_settings; s = load_settings();"
         " print(s.env, s.database_url.split('@')[1], s.redis_url)"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.split() == [
        "staging", "nexus-postgresql:5432/nexus", "redis://nexus-redis:6379/0",
    ]  # fmt: skip
