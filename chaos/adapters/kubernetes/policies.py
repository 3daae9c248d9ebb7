"""What the NetworkPolicies already in a namespace allow the pods a partition would cut off.

NetworkPolicies only ever add allowances: a pod selected by several policies may receive what
any of them allows. So the deny-all policy of `network.partition` cuts nothing an existing
policy lets through, and the fault would hold only in part while reporting itself injected.
Before the partition is created, the policies that select any of its pods and allow something
are found here and described ("ingress from pods app=frontend on TCP/8080"), so the fault can
be refused with what keeps flowing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chaos.adapters.kubernetes.connection import LABEL_RUN


def _expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or ()
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector: an empty one selects every pod (of the policy's namespace)."""
    selector = selector or {}
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) \
        and all(_expression(e, labels) for e in selector.get("matchExpressions") or ())


def _describe_selector(selector: Mapping[str, Any] | None) -> str:
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    parts += [f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip()
              for e in selector.get("matchExpressions") or ()]
    return ",".join(parts) or "any"


def _peer(peer: Mapping[str, Any]) -> str:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        return f"{block.get('cidr')}" + (f" except {', '.join(block['except'])}"
                                         if block.get("except") else "")
    where = []
    if "namespaceSelector" in peer:
        where.append(f"namespaces {_describe_selector(peer['namespaceSelector'])}")
    if "podSelector" in peer:
        where.append(f"pods {_describe_selector(peer['podSelector'])}")
    return " in ".join(reversed(where)) if where else "anywhere"


def _ports(ports: Iterable[Mapping[str, Any]] | None) -> str:
    named = [f"{p.get('protocol', 'TCP')}/{p.get('port', 'any')}" +
             (f"-{p['endPort']}" if p.get("endPort") else "") for p in ports or ()]
    return f" on {', '.join(named)}" if named else ""


def allowances(policy: Mapping[str, Any]) -> list[str]:
    """What a policy lets through, one phrase per rule ([] for a deny-all policy)."""
    spec = policy.get("spec") or {}
    found = []
    for direction, peers_key, word in (("ingress", "from", "from"), ("egress", "to", "to")):
        for rule in spec.get(direction) or ():
            peers = rule.get(peers_key) or [{}]  # no peers: from/to anywhere
            found.append(f"{direction} {word} {' or '.join(_peer(p) for p in peers)}"
                         f"{_ports(rule.get('ports'))}")
    return found


def allowing(policies: Iterable[Mapping[str, Any]],
             pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """"name (what it allows)" for each policy, not one of ours, that selects one of the pods
    and allows something."""
    labels = [p.get("metadata", {}).get("labels") or {} for p in pods]
    found = []
    for policy in policies:
        meta = policy.get("metadata") or {}
        if LABEL_RUN in (meta.get("labels") or {}):
            continue  # a partition of ours (another run's): it allows nothing
        allows = allowances(policy)
        if allows and any(selects((policy.get("spec") or {}).get("podSelector"), pod)
                          for pod in labels):
            found.append(f"{meta.get('name')} ({'; '.join(allows)})")
    return found
