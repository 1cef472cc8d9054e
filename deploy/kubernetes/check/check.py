"""Render every overlay and check it offline: ``make k8s-check``.

    .venv-k8s/bin/python deploy/kubernetes/check/check.py [--kubectl PATH ...]

For each overlay (``dev``, ``prod``) and the ``without-keda`` fallback:

1. **Render** with each ``--kubectl`` given (default: ``kubectl`` on PATH):
   ``kubectl kustomize``. Several renderers (a current kubectl and Debian
   12's kubectl 1.20, whose kustomize is v2.0.3) must agree, object for
   object. The output is kept in ``data/k8s/<overlay>.yaml``.
2. **Validate** every Kubernetes object, strictly (unknown fields are
   errors), against the schemas of Kubernetes 1.30 and of the newest
   release ``kubernetes-validate`` carries; KEDA's objects against KEDA's
   own schemas (``validate_keda.mjs``, ``@kubernetes-models/keda``).
3. **Lint** with checkov, every check on, the exceptions listed with their
   reasons in ``checkov-<overlay>.yaml`` and in the objects' annotations.

Exits 1, saying what failed, if anything does. Network: none.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
KUBERNETES = HERE.parent
ROOT = KUBERNETES.parent.parent
OUT = ROOT / "data" / "k8s"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes the manifests promise, and the newest there are schemas for.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KEDA_GROUP = "keda.sh/"


def render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        where = directory.relative_to(ROOT)
        raise SystemExit(f"{kubectl} kustomize {where} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _comparable(objects: list[dict[str, Any]]) -> list[str]:
    # kustomize v2 wraps a Secret's base64 at 76 columns; v5 does not.
    same = []
    for item in objects:
        plain = item
        if item.get("kind") == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in item.get("data", {}).items()}
            plain = {**item, "data": data}
        same.append(json.dumps(plain, sort_keys=True))
    return sorted(same)


def validate(objects: list[dict[str, Any]]) -> list[str]:
    failures = []
    for item in objects:
        name = f"{item.get('kind')}/{item.get('metadata', {}).get('name')}"
        if str(item.get("apiVersion", "")).startswith(KEDA_GROUP):
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(item, version, strict=True)
            except (
                kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError,
                kubernetes_validate.InvalidSchemaError,
            ) as exc:
                failures.append(f"{name} (Kubernetes {version}): {exc}".splitlines()[0])
    return failures


def validate_keda(objects: list[dict[str, Any]]) -> list[str]:
    keda = [o for o in objects if str(o.get("apiVersion", "")).startswith(KEDA_GROUP)]
    if not keda:
        return []
    done = subprocess.run(
        ["node", str(HERE / "validate_keda.mjs")],
        input=json.dumps(keda), capture_output=True, text=True, cwd=HERE, check=False,
    )  # fmt: skip
    print(done.stdout, end="")
    if done.returncode != 0:
        return [line for line in done.stdout.splitlines() if line.startswith("FAIL")] or [
            f"KEDA validation failed: {done.stderr.strip()}"
        ]
    return []


def checkov(path: Path, overlay: str) -> list[str]:
    checkov_bin = Path(sys.executable).parent / "checkov"
    config = HERE / f"checkov-{overlay}.yaml"
    done = subprocess.run(
        [str(checkov_bin), "--file", str(path), "--framework", "kubernetes",
         "--config-file", str(config), "--skip-download", "--compact", "--quiet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return [f"checkov on {overlay}:\n{done.stdout}{done.stderr}"]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubectl", action="append", help="a kubectl to render with (repeatable)")
    args = parser.parse_args()
    renderers = args.kubectl or ["kubectl"]
    for kubectl in renderers:
        if shutil.which(kubectl) is None:
            raise SystemExit(f"{kubectl}: not found (Debian: apt-get install kubernetes-client)")
    OUT.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for overlay in OVERLAYS:
        renders = [render(kubectl, KUBERNETES / "overlays" / overlay) for kubectl in renderers]
        for other, kubectl in zip(renders[1:], renderers[1:], strict=True):
            if _comparable(other) != _comparable(renders[0]):
                failures.append(f"{overlay}: {kubectl} renders differently from {renderers[0]}")
        objects = renders[0]
        path = OUT / f"{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        print(f"{overlay}: {len(objects)} objects, rendered by {', '.join(renderers)}")
        failures += [f"{overlay}: {f}" for f in validate(objects)]
        failures += [f"{overlay}: {f}" for f in validate_keda(objects)]
        failures += checkov(path, overlay)
    fallback = list(
        yaml.safe_load_all((KUBERNETES / "without-keda" / "worker-hpa.yaml").read_text())
    )
    failures += [f"without-keda: {f}" for f in validate(fallback)]
    if failures:
        print("\n".join(["FAILED:", *failures]), file=sys.stderr)
        raise SystemExit(1)
    versions = ", ".join(VERSIONS)
    print(f"every overlay renders, validates (Kubernetes {versions}; KEDA) and passes checkov")


if __name__ == "__main__":
    main()
