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
