"""The `kubernetes:` section, the Kubernetes target kinds and probes are validated like the rest
of the file: every problem at once, with file:line:col and the field path; `chaos validate`
never imports the kubernetes client for them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from chaos.runner.load import load_experiment
from tests.conftest import run_chaos

BAD = """\
title: bad kubernetes bits
kubernetes:
  contxt: prod
  namespaces: [Shop]
hypothesis:
  probes:
    - pods: {namespace: shop, min_ready: -1}
faults:
  - type: pod.delete
    target: {pods: {namespace: shop, label: {app: web}}}
  - type: workload.scale_down
    target: {deployment: web}
    with: {replicas: two}
    duration: 10s
  - type: node.taint
    target: {node: {}}
    with: {effect: NoRun}
    duration: 10s
"""


def test_every_problem_is_reported_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = run_chaos("validate", str(path))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    for expected in (
        "bad.yaml:3:3: kubernetes.contxt: unknown field; did you mean context?",
        "bad.yaml:4:16: kubernetes.namespaces[0]:",
        "bad.yaml:7:42: hypothesis.probes[0].pods.min_ready:",
        "bad.yaml:10:38: faults[0].target.pods.label: unknown field; did you mean labels?",
        "faults[1].with.replicas:",
        "faults[2].target.node: say which node",
        "faults[2].with.effect:",
    ):
        assert expected in out, f"{expected!r} not in:\n{out}"
    assert "Traceback" not in out


RUN_TIME_ONLY = """\
title: combinations only the adapters used to refuse, at run time and without a line
faults:
  - type: pod.delete
    target: {pods: {namespace: shop, labels: {app: web}, port: 5432}}
  - type: container.kill
    target: {pods: {namespace: shop, labels: {app: web}}}
    with: {signal: KILL}
  - type: network.partition
    target:
      pods: {namespace: shop, labels: {app: web}, names: [web-1], device: eth1}
      count: 1
    duration: 10s
  - type: network.partition
    target: {pods: {namespace: shop}}
    duration: 10s
  - type: resource.cpu
    target: {pods: {namespace: shop, labels: {app: web}, direction: egress}}
    duration: 10s
  - type: network.loss
    target: {pods: {namespace: shop, labels: {app: web}, port: 5432}}
    with: {percent: 10%}
    duration: 10s
"""


def test_rules_across_target_and_parameters_are_checked_where_they_are(tmp_path: Path) -> None:
    """Traffic filters on faults that ignore them, SIGKILL for container.kill, a partition
    that is not a label selector: validate said ok, then the run refused with no location."""
    path = tmp_path / "mixed.yaml"
    path.write_text(RUN_TIME_ONLY)
    result = run_chaos("validate", str(path))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    expected = [
        "mixed.yaml:4:64: faults[0].target.pods.port: port selects traffic for in-pod network "
        "faults only",
        "mixed.yaml:7:20: faults[1].with.signal: SIGKILL cannot reach a container's main process",
        "mixed.yaml:10:58: faults[2].target.pods.names: network.partition on pods is a "
        "NetworkPolicy over every pod its labels select: select by labels only, remove names",
        "mixed.yaml:10:75: faults[2].target.pods.device: device selects traffic",
        "mixed.yaml:11:14: faults[2].target.count: network.partition on pods is a NetworkPolicy "
        "over every pod its labels select: it cannot hit only some of them, remove count",
        "mixed.yaml:14:20: faults[3].target.pods: network.partition on pods is a NetworkPolicy "
        "over every pod its labels select: add `labels` (its podSelector)",
        "mixed.yaml:17:69: faults[4].target.pods.direction: direction selects traffic",
    ]
    for line in expected:
        assert line in out, f"{line!r} not in:\n{out}"
    assert "faults[5]" not in out  # in-pod network faults use the traffic filters
    assert f"mixed.yaml: {len(expected)} problems" in out and "Traceback" not in out


def test_settings_reach_every_fault_with_the_kubeconfig_made_absolute(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(textwrap.dedent("""\
        title: ok
        kubernetes: {context: kind-chaos, kubeconfig: conf/kube.yaml, namespaces: [shop]}
        faults:
          - type: pod.delete
            target: {pods: {labels: {app: web}}, count: 1}
          - type: node.cordon
            target: {node: worker-1}
            duration: 5s
        """))
    experiment = load_experiment(path)
    for fault in experiment.faults:
        assert dict(fault.kubernetes) == {"context": "kind-chaos", "namespaces": ("shop",),
                                          "kubeconfig": str(tmp_path / "conf" / "kube.yaml")}
    assert experiment.faults[0].target.count == 1
    assert experiment.faults[1].target.selector["name"] == "worker-1"
