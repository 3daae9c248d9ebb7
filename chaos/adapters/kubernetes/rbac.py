"""The Kubernetes permissions the adapter needs, as plain data.

One place says which verbs on which resources the adapter calls; the manifests in
deploy/kubernetes/, `chaos gameday export --kubernetes`, the 403 messages and the test that
records every call the adapter makes against the emulator all read it. It must stay importable
without the `kubernetes` client (validation and exports import it), so it holds data only.

NAMESPACED_RULES go into a Role in every namespace experiments may touch; CLUSTER_RULES into a
ClusterRole (nodes are cluster-scoped, and draining a node evicts pods of every namespace).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

Rule = Mapping[str, Sequence[str]]

# The image of the ephemeral containers that run in-pod faults (the Dockerfile at the repository
# root): python + chaos for the self-limiting agent, iproute2 (tc) and nftables for network faults.
DEFAULT_IMAGE: Final = "ghcr.io/chaos-runner/chaos:0.1.0"

SERVICE_ACCOUNT: Final = "chaos"
ROLE_NAME: Final = "chaos-runner"
CLUSTER_ROLE_NAME: Final = "chaos-runner-nodes"

NAMESPACED_RULES: Final[tuple[Rule, ...]] = (
    # select pods, check UIDs, pod.delete
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "delete"]},
    # in-pod faults: an ephemeral container in the target pod (container.kill, network.*,
    # resource.* on pods); exec is the container.kill fallback where ephemeral containers are off.
    # The client opens exec with a websocket GET: authorized as `get`, and from Kubernetes 1.35
    # also as `create` (the verb of exec's POST). pods/log: the agent's `ready:` line, which
    # says a fault is held (a container's "running" does not)
    {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    # scale-down and its revert; probes read available replicas
    # (patch: the run-id label and expiry annotation that `chaos recover --kubernetes` finds)
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"],
     "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale", "statefulsets/scale"],
     "verbs": ["patch"]},
    # scale-down: an autoscaler on the workload would undo it (refused unless scaled to 0)
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list"]},
    # network.partition: a NetworkPolicy we own, deleted on revert and by `chaos recover`
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
     "verbs": ["list", "create", "delete"]},
    # traffic.workers.kubernetes: the workers' Job and the Secret holding their token, created
    # by the run and deleted at its end; `chaos recover --kubernetes` lists Jobs. Secrets are
    # never listed or read (that would be every secret of the namespace): the Job owns its
    # Secret, and a sweep deletes it by the Job's name
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
)

CLUSTER_RULES: Final[tuple[Rule, ...]] = (
    # node.cordon, node.taint, node.drain (cordon first) and their reverts
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
    # node.drain: the pods on a node, in every namespace, evicted through the Eviction API
    # (which respects PodDisruptionBudgets)
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
)


def allowed(rules: Iterable[Rule]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples the rules grant."""
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def rule_for(group: str, resource: str) -> tuple[str, Rule | None]:
    """Which role ("Role" or "ClusterRole") carries the rule for a resource, and the rule."""
    for role, rules in (("Role", NAMESPACED_RULES), ("ClusterRole", CLUSTER_RULES)):
        for rule in rules:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                return role, rule
    return "Role", None


def manifests(namespace: str = "chaos",
              target_namespaces: Sequence[str] = ("chaos",)) -> list[dict[str, Any]]:
    """ServiceAccount (in `namespace`), a Role + RoleBinding in each target namespace, and the
    ClusterRole + ClusterRoleBinding: what deploy/kubernetes/rbac.yaml holds."""
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]
    labels = {"app.kubernetes.io/name": "chaos"}
    docs: list[dict[str, Any]] = [{
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels}}]
    for target in target_namespaces:
        meta = {"name": ROLE_NAME, "namespace": target, "labels": labels}
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": meta, "rules": [_plain(r) for r in NAMESPACED_RULES]})
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": dict(meta), "subjects": subject,
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                 "name": ROLE_NAME}})
    meta = {"name": CLUSTER_ROLE_NAME, "labels": labels}
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": meta, "rules": [_plain(r) for r in CLUSTER_RULES]})
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": dict(meta), "subjects": subject,
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                             "name": CLUSTER_ROLE_NAME}})
    return docs


def _plain(rule: Rule) -> dict[str, list[str]]:
    return {key: list(rule[key]) for key in ("apiGroups", "resources", "verbs")}


if __name__ == "__main__":  # regenerate: python -m chaos.adapters.kubernetes.rbac > FILE
    import sys

    import yaml

    print("# Generated from chaos/adapters/kubernetes/rbac.py: do not edit; regenerate with\n"
          "#   python -m chaos.adapters.kubernetes.rbac > deploy/kubernetes/rbac.yaml\n"
          "# The Role and its RoleBinding go into every namespace experiments may touch: copy\n"
          "# them with another metadata.namespace, or regenerate with namespaces as arguments.")
    print(yaml.safe_dump_all(manifests("chaos", sys.argv[1:] or ("chaos",)), sort_keys=False),
          end="")
