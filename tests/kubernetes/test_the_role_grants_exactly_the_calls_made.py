"""The shipped Role and ClusterRole grant exactly what the adapter uses.

Every (verb, group, resource) the adapter called across the kubernetes tests (recorded by the
emulator, collected in conftest.API_CALLS; this file runs last) must be granted: namespaced
calls by the Role or the ClusterRole, cluster-scoped calls by the ClusterRole. And every rule in
rbac.py must have been used, so the Role does not grow verbs nobody needs. deploy/kubernetes/
must match rbac.py, and its manifests must be valid Kubernetes objects.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from chaos.adapters.kubernetes import rbac
from tests.conftest import ROOT
from tests.kubernetes.conftest import API_CALLS

DEPLOY = ROOT / "deploy" / "kubernetes"


def test_every_call_made_is_granted() -> None:
    if not API_CALLS:
        pytest.skip("no calls were recorded: run it with the other tests in tests/kubernetes")
    cluster = rbac.allowed(rbac.CLUSTER_RULES)
    anywhere = rbac.allowed(rbac.NAMESPACED_RULES) | cluster
    missing = sorted({(c.verb, c.group, c.resource, "cluster" if c.namespace is None else
                       "namespaced", test) for test, c in API_CALLS
                      if (c.group, c.resource, c.verb) not in (
                          cluster if c.namespace is None else anywhere)})
    assert not missing, "calls the shipped roles do not grant:\n" + "\n".join(map(str, missing))


def test_every_granted_rule_was_used(request: pytest.FixtureRequest) -> None:
    here = Path(__file__).parent
    files = {p.name for p in here.glob("test_*.py")}
    ran = {item.path.name for item in request.session.items}
    if not files <= ran:
        pytest.skip(f"only part of tests/kubernetes ran ({len(ran & files)} of {len(files)} "
                    "files): the rules are compared with the calls of all of them")
    used = {(c.group, c.resource, c.verb) for _, c in API_CALLS}
    unused = rbac.allowed(rbac.NAMESPACED_RULES) | rbac.allowed(rbac.CLUSTER_RULES)
    unused -= used
    assert not unused, f"granted but never called by the adapter: {sorted(unused)}"

def test_deploy_manifests_are_generated_from_rbac_py() -> None:
    shipped = [d for d in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()) if d]
    assert shipped == rbac.manifests("chaos", ("chaos",)), (
        "deploy/kubernetes/rbac.yaml is stale: python -m chaos.adapters.kubernetes.rbac > "
        "deploy/kubernetes/rbac.yaml")


@pytest.mark.parametrize("name", ["rbac.yaml", "experiment-job.yaml"])
def test_deploy_manifests_are_valid_kubernetes_objects(name: str) -> None:
    for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_the_job_runs_as_the_service_account_the_bindings_name() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "experiment-job.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == rbac.SERVICE_ACCOUNT
    assert pod["containers"][0]["image"] == rbac.DEFAULT_IMAGE
    assert job["spec"]["backoffLimit"] == 0
