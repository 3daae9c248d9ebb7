"""In-pod faults end to end: the adapter patches ephemeral containers into a pod of the emulator,
a kubelet thread (tests/support/kubernetes/inpod_kubelet.py) runs them for real in a network namespace
standing for the pod, and the rules are observed in that namespace.

Asserted: the ephemeral container spec the emulator received (image, NET_ADMIN, the deadline in
the args, run id), that it is a valid Pod spec for Kubernetes 1.30, the revert's `stop` container
and the rules gone afterwards, the agent's own failure (no netem) surfacing as a clear error, a
vanished pod counting as reverted, and clear errors for Pod Security admission and clusters
without ephemeral containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import psutil
import pytest

from chaos.adapters.base import TargetRef
from chaos.adapters.kubernetes import ephemeral as eph_adapter
from chaos.adapters.kubernetes.ephemeral import PodNetworkAdapter, PodResourceAdapter
from chaos.adapters.local.kernel import netem_available
from chaos.errors import ChaosError, FaultFailed, GuardRefused, PermissionDenied
from chaos.model.experiment import FaultSpec, Target, frozen
from tests.conftest import chaos_cmd, wait_until
from tests.support.kubernetes.emulator import PODS, Emulator
from tests.support.kubernetes.inpod_kubelet import Kubelet, add_pod
from tests.support.kubernetes.inpod_pods import IMAGE, Scope, patches, pod  # noqa: F401 - pod: the fixture
from tests.support.netns_traffic import has_table, kernel_state

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.needs("ip", "tc", "nft")]


def pod_fault(fault_type: str, params: dict[str, Any], duration: float = 60,
              selector: dict[str, Any] | None = None) -> FaultSpec:
    return FaultSpec(index=0, name="in-pod", type=fault_type,
                     target=Target("pods", frozen(selector or {"namespace": "shop",
                                                               "names": ["web-1"]})),
                     params=frozen(params), start=0.0, duration=duration,
                     kubernetes=frozen({"image": IMAGE}))


def reported(k8s: Emulator, container: str) -> dict[str, Any]:
    """The container's state as the API reports it (the kubelet's, a second late)."""
    pod_obj = k8s.call(lambda c: c.get(PODS, "shop", "web-1")) or {}
    return next((s["state"] for s in pod_obj.get("status", {}).get(
        "ephemeralContainerStatuses") or () if s["name"] == container), {})


async def inject(adapter: Any, fault: FaultSpec) -> tuple[TargetRef, dict[str, Any]]:
    [target] = await adapter.resolve(fault, Scope())
    spec = adapter.prepare(fault, target)
    json.dumps(spec)  # plain data: the ledger and the watchdog take it as is
    return target, await adapter.inject(fault, target, spec, Scope())


def test_loss_container_spec_then_revert_by_a_stop_container(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    before = kernel_state(netns_pair)
    fault = pod_fault("network.loss", {"percent": 0.3, "correlation": 0.0}, selector={
        "namespace": "shop", "names": ["web-1"]})
    adapter = PodNetworkAdapter()
    start = time.time()
    _, spec = asyncio.run(inject(adapter, fault))
    assert has_table(netns_pair["b"])
    [hold] = patches(k8s)
    assert hold["name"] == f"chaos-hold-{spec['id']}" == spec["container"]
    assert hold["image"] == IMAGE and hold["command"] == ["python", "-m",
                                                         "chaos.adapters.kubernetes.inpod_agent"]
    assert hold["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert "targetContainerName" not in hold
    args = hold["args"]
    deadline = float(args[args.index("--deadline") + 1])
    assert deadline == pytest.approx(start + 60, abs=5) and deadline == spec["deadline"]
    assert 60 <= float(args[args.index("--max-for") + 1]) <= 60 + 130
    assert json.loads(args[args.index("--with") + 1]) == {"percent": 0.3, "correlation": 0.0}
    assert {"name": "CHAOS_RUN_ID", "value": "run-inpod-1"} in hold["env"]
    pod_obj = k8s.call(lambda c: c.get(PODS, "shop", "web-1"))
    assert pod_obj is not None
    kubernetes_validate.validate({k: pod_obj[k] for k in ("apiVersion", "kind", "spec")} | {
        "metadata": {"name": "web-1"}}, "1.30.0", strict=True)

    assert asyncio.run(adapter.revert(spec)) == "reverted"
    hold, stop = patches(k8s)
    assert stop["name"].startswith(f"chaos-stop-{spec['id']}-") and stop["args"][0] == "stop"
    assert stop["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert kernel_state(netns_pair) == before
    status = {s["name"]: s["state"] for s in pod.statuses["web-1"].values()}
    assert wait_until(lambda: "terminated" in pod.statuses["web-1"][hold["name"]]["state"], 10)
    assert pod.statuses["web-1"][hold["name"]]["state"]["terminated"]["message"] == \
        "reverted (stopped): reverted", status
    verbs = {(c.verb, c.resource) for c in k8s.cluster.calls}
    assert verbs == {("list", "pods"), ("get", "pods"), ("patch", "pods/ephemeralcontainers"),
                     ("get", "pods/log")}  # the agent's `ready:` line


def test_the_agent_ends_the_fault_at_its_deadline_and_the_revert_adds_nothing(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    before = kernel_state(netns_pair)
    fault = pod_fault("network.bandwidth", {"rate": 1 << 20}, duration=3, selector={
        "namespace": "shop", "names": ["web-1"]})
    adapter = PodNetworkAdapter()
    _, spec = asyncio.run(inject(adapter, fault))
    assert "ca05:" in subprocess.run(["tc", "-n", netns_pair["b"], "qdisc", "show"],
                                     capture_output=True, text=True, check=True).stdout
    name = spec["container"]
    assert wait_until(lambda: "terminated" in reported(k8s, name), 30)  # as the API shows it
    assert kernel_state(netns_pair) == before  # nobody but the agent removed it
    assert asyncio.run(adapter.revert(spec)) == "reverted"
    assert len(patches(k8s)) == 1, "the agent already ended it: no stop container needed"


@pytest.mark.skipif(netem_available(), reason="netem exists here: the refusal is not reachable")
def test_latency_without_netem_fails_clearly_with_the_agents_reason(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    before = kernel_state(netns_pair)
    fault = pod_fault("network.latency", {"delay": 0.1, "jitter": 0.0, "correlation": 0.0},
                      selector={"namespace": "shop", "names": ["web-1"]})
    with pytest.raises(PermissionDenied) as error:
        asyncio.run(inject(PodNetworkAdapter(), fault))
    assert "sch_netem" in str(error.value) and "proxy" in error.value.hint  # the agent's hint
    assert "pod shop/web-1" in str(error.value)
    assert kernel_state(netns_pair) == before


@pytest.mark.parametrize(("fault_type", "params"), [
    ("resource.cpu", {"load": 0.3, "cores": 1, "pin": False, "ramp": 0.0}),
    ("resource.memory", {"amount": {"bytes": 16 * 2**20}, "of": "total", "mode": "allocate", "ramp": 0.0,
                         "force": False}),
])
def test_cpu_and_memory_in_the_pod_are_stopped_by_the_revert(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, fault_type: str,
    params: dict[str, Any]
) -> None:
    fault = pod_fault(fault_type, params)
    adapter = PodResourceAdapter()
    _, spec = asyncio.run(inject(adapter, fault))
    [hold] = patches(k8s)
    assert hold["securityContext"] == {"runAsUser": 65532, "runAsGroup": 65532,
                                       "runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                       "capabilities": {"drop": ["ALL"]},
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    args = hold["args"]
    assert args[0] == "hold" and args[args.index("--fault") + 1] == fault_type
    assert float(args[args.index("--deadline") + 1]) == spec["deadline"]
    assert json.loads(args[args.index("--with") + 1]) == params
    agent, _ = pod.procs["web-1", hold["name"]]
    assert agent.poll() is None
    assert asyncio.run(adapter.revert(spec)) == "reverted"
    assert agent.wait(10) == 0


def test_a_vanished_pod_counts_as_reverted(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    fault = pod_fault("network.loss", {"percent": 0.1, "correlation": 0.0},
                      selector={"namespace": "shop", "names": ["web-1"]})
    adapter = PodNetworkAdapter()
    _, spec = asyncio.run(inject(adapter, fault))
    k8s.call(lambda c: c.objects[PODS, "shop", "web-1"].delete())
    assert asyncio.run(adapter.revert(spec)) == "gone"
    add_pod(k8s, "web-1")  # same name, new UID: not ours either
    assert asyncio.run(adapter.revert(spec)) == "gone"


def test_a_pod_on_the_host_network_is_refused_before_any_patch(k8s: Emulator) -> None:
    k8s.call(lambda c: c.put(PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop"},
        "spec": {"hostNetwork": True, "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running"}}))
    with pytest.raises(GuardRefused) as refused:
        asyncio.run(inject(PodNetworkAdapter(), pod_fault("network.loss", {"percent": 0.1})))
    assert "hostNetwork" in str(refused.value) and "whole node" in str(refused.value)
    assert patches(k8s) == []


class RefusingApi:
    """An Api whose patch raises what a cluster answered (status mapping is api.py's job,
    tested with the emulator; here: what the in-pod adapter makes of it)."""

    def __init__(self, error: ChaosError) -> None:
        self.error = error

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("error, expected, hint", [
    (PermissionDenied('pods "web-1" is forbidden: violates PodSecurity "baseline:latest": '
                      'non-default capabilities (container "chaos-hold-x" must not include '
                      '"NET_ADMIN" in securityContext.capabilities.add)'),
     "admission refused", "pod-security.kubernetes.io/enforce=privileged"),
    (FaultFailed('patch pods/ephemeralcontainers failed: HTTP 422: Pod "web-1" is invalid: '
                 'spec.ephemeralContainers[0].securityContext.capabilities: NET_ADMIN'),
     "refused chaos's ephemeral container", "NET_ADMIN"),
])
def test_admission_refusals_say_what_to_do(error: ChaosError, expected: str,
                                           hint: str) -> None:
    with pytest.raises(ChaosError) as raised:
        asyncio.run(eph_adapter.add_container(RefusingApi(error), "shop", "web-1", {}, {}))
    assert expected in str(raised.value) and hint in raised.value.hint


def test_a_cluster_without_ephemeral_containers_is_named(k8s: Emulator) -> None:
    from chaos.adapters.kubernetes.api import api_for
    from tests.support.kubernetes.inpod_kubelet import without_ephemeral

    add_pod(k8s, "web-1")
    k8s.call(without_ephemeral)
    with pytest.raises(eph_adapter.EphemeralUnavailable) as raised:
        asyncio.run(eph_adapter.add_container(api_for({}), "shop", "web-1", {"name": "x"}, {}))
    assert "does not serve pods/ephemeralcontainers" in str(raised.value)
    assert "1.25" in raised.value.hint


def test_a_pod_deleted_before_the_patch_is_not_called_a_cluster_without_ephemeral_containers(
    k8s: Emulator
) -> None:
    """Both are 404s; the API's Status names the pod only when the pod is what is missing (as
    `kubectl debug` tells them apart). A revert's `stop` then counts the pod as gone."""
    from chaos.adapters.kubernetes.api import api_for

    with pytest.raises(eph_adapter.PodVanished) as raised:
        asyncio.run(eph_adapter.add_container(api_for({}), "shop", "web-1", {"name": "x"}, {}))
    assert "shop/web-1 was deleted" in str(raised.value)
    assert "does not serve" not in str(raised.value) and "1.25" not in raised.value.hint


def test_sigkill_of_the_runner_mid_fault_brings_the_watchdogs_stop_container(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, tmp_path: Path, state_dir: Path
) -> None:
    before = kernel_state(netns_pair)
    path = tmp_path / "pod-loss.yaml"
    path.write_text(f"""title: in-pod loss
kubernetes: {{namespaces: [shop], image: "{IMAGE}"}}
faults:
  - name: pod-loss
    type: network.loss
    target: {{pods: {{namespace: shop, names: [web-1]}}}}
    with: {{percent: 40%}}
    duration: 120s
""")
    log = tmp_path / "runner.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen(chaos_cmd("run", "-q", str(path)), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: has_table(netns_pair["b"]), 30), log.read_text()
        runner.kill()
        runner.wait(10)
        assert wait_until(lambda: not has_table(netns_pair["b"]), 30), "the watchdog did not revert"
    finally:
        runner.kill()
        runner.wait(10)
    hold, stop = patches(k8s)
    assert stop["args"][:3] == ["stop", "--id", hold["args"][2]]
    assert stop["args"][stop["args"].index("--fault") + 1] == "network.loss"
    assert kernel_state(netns_pair) == before
    assert wait_until(lambda: "terminated" in pod.statuses["web-1"][stop["name"]]["state"], 10)
    message = pod.statuses["web-1"][stop["name"]]["state"]["terminated"]["message"]
    assert message == "stopped: agent: reverted (stopped): reverted; leftovers: gone"


@pytest.mark.parametrize("pod", [{"delays": {"chaos-hold-": 3.0}}], indirect=True)
def test_a_revert_while_the_hold_container_is_still_starting_waits_and_stops_it(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    """An inject given up on while its image is pulled: the revert must not leave the hold to
    start after it and hold the fault until its deadline."""
    before = kernel_state(netns_pair)
    fault = pod_fault("network.loss", {"percent": 0.3, "correlation": 0.0})
    adapter = PodNetworkAdapter()

    async def inject_given_up_then_reverted() -> tuple[dict[str, Any], str]:
        [target] = await adapter.resolve(fault, Scope())
        spec = adapter.prepare(fault, target)
        injecting = asyncio.create_task(adapter.inject(fault, target, spec, Scope()))
        for _ in range(200):  # until the hold container is in the pod (bounded)
            if patches(k8s):
                break
            await asyncio.sleep(0.05)
        injecting.cancel()  # as the runner's inject timeout does; then the revert
        with contextlib.suppress(asyncio.CancelledError):
            await injecting
        return spec, await adapter.revert(spec)

    spec, outcome = asyncio.run(inject_given_up_then_reverted())
    assert outcome == "reverted"
    hold = spec["container"]
    assert wait_until(lambda: "terminated" in pod.statuses["web-1"][hold]["state"], 15), \
        "the hold container outlived the revert"
    assert pod.statuses["web-1"][hold]["state"]["terminated"]["message"] == \
        "reverted (stopped): reverted"
    assert not has_table(netns_pair["b"]) and kernel_state(netns_pair) == before


@pytest.mark.parametrize("pod", [{"cold_start": 2.5}], indirect=True)
def test_an_agent_that_fails_after_a_slow_start_is_not_reported_injected(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    """The kubelet reports "running" a second late and the agent starts slowly (a cold
    python): its failure comes well after "running". The inject waits for the agent's `ready:`
    line or its end, so the failure is the inject's, not a fault "held" on an unshaped pod."""
    before = kernel_state(netns_pair)
    fault = pod_fault("network.loss", {"percent": 0.3, "correlation": 0.0},
                      selector={"namespace": "shop", "names": ["web-1"], "device": "eth9"})
    with pytest.raises(ChaosError) as failed:
        asyncio.run(inject(PodNetworkAdapter(), fault))
    assert "eth9" in str(failed.value), str(failed.value)
    assert kernel_state(netns_pair) == before


def test_the_fault_counts_as_held_only_once_the_agent_says_ready(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    """What the inject read: the agent's own line on pods/log, after its rules were in place."""
    fault = pod_fault("network.loss", {"percent": 0.3, "correlation": 0.0})
    adapter = PodNetworkAdapter()
    _, spec = asyncio.run(inject(adapter, fault))
    assert has_table(netns_pair["b"])  # already when the inject returned
    logs = [c for c in k8s.cluster.calls if c.resource == "pods/log"]
    assert logs and all(dict(c.query).get("container") == spec["container"] for c in logs)
    assert asyncio.run(adapter.revert(spec)) == "reverted"


@pytest.mark.parametrize("fault_type,params", [
    ("resource.cpu", {"load": 0.3, "cores": 1, "pin": False, "ramp": 0.0}),
])
def test_a_pod_that_forbids_root_takes_resource_faults_as_the_images_user(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, fault_type: str,
    params: dict[str, Any]
) -> None:
    """Ephemeral containers inherit the pod's `runAsNonRoot: true`; the kubelet refuses to
    run one as root (CreateContainerConfigError). The resource agent runs as the image's
    non-root user, which the process on the node shows."""
    k8s.call(lambda c: c.objects[PODS, "shop", "web-1"].patch({"spec": {"securityContext": {
        "runAsNonRoot": True}}}))
    adapter = PodResourceAdapter()
    _, spec = asyncio.run(inject(adapter, pod_fault(fault_type, params)))
    agent, _ = pod.procs["web-1", spec["container"]]
    assert psutil.Process(agent.pid).uids().real == 65532
    assert asyncio.run(adapter.revert(spec)) == "reverted"
    assert agent.wait(10) == 0


RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "app", "image": "app:1", "securityContext": {
        "runAsUser": 1000, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}}}],
}


def test_a_restricted_namespace_admits_resource_faults_and_refuses_network_ones_clearly(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    """Pod Security evaluates the whole pod on pods/ephemeralcontainers: the resource agent
    passes "restricted"; NET_ADMIN does not, and the refusal says so (and what to do)."""
    from tests.support.kubernetes.ephemeral_realism import set_level

    k8s.call(lambda c: set_level(c, "shop", "restricted"))
    k8s.call(lambda c: c.objects[PODS, "shop", "web-1"].patch({"spec": RESTRICTED_POD}))
    adapter = PodResourceAdapter()
    _, spec = asyncio.run(inject(adapter, pod_fault(
        "resource.cpu", {"load": 0.3, "cores": 1, "pin": False, "ramp": 0.0})))
    assert asyncio.run(adapter.revert(spec)) == "reverted"
    with pytest.raises(PermissionDenied) as refused:
        asyncio.run(inject(PodNetworkAdapter(), pod_fault("network.loss", {"percent": 0.1})))
    assert 'violates PodSecurity "restricted:latest"' in str(refused.value)
    assert "enforce=privileged" in refused.value.hint
    assert not has_table(netns_pair["b"])


@pytest.mark.parametrize("pod,reason", [
    ({"image_errors": {"chaos-hold-": "ErrImageNeverPull"}}, "ErrImageNeverPull"),
    ({"image_errors": {"chaos-hold-": "ImageInspectError"}}, "ImageInspectError"),
], indirect=["pod"])
def test_image_errors_that_never_clear_fail_the_inject_with_their_reason(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet, reason: str
) -> None:
    """Not waited out for the whole start timeout and then called "not started": the
    kubelet's own reason and message, and what to check."""
    with pytest.raises(FaultFailed) as failed:
        asyncio.run(inject(PodResourceAdapter(), pod_fault(
            "resource.cpu", {"load": 0.3, "cores": 1, "pin": False, "ramp": 0.0})))
    assert f"cannot start: {reason}: " in str(failed.value), str(failed.value)
    assert "kubernetes: {image: ...}" in failed.value.hint


def test_the_kubelets_runasnonroot_refusal_gets_its_own_hint(
    k8s: Emulator, netns_pair: dict[str, str], pod: Kubelet
) -> None:
    """A container that would run as root in a `runAsNonRoot: true` pod (here: one whose user a
    mutating webhook could have stripped) waits in CreateContainerConfigError: said as that,
    not as an image problem."""
    from chaos.adapters.kubernetes import ephemeral_spec as eph
    from chaos.adapters.kubernetes.api import api_for

    k8s.call(lambda c: c.objects[PODS, "shop", "web-1"].patch({"spec": {"securityContext": {
        "runAsNonRoot": True}}}))
    live = k8s.call(lambda c: c.get(PODS, "shop", "web-1"))
    assert live is not None
    container = eph.container("hold", "rootish", ["hold"], eph.InPodSettings(IMAGE), run_id="",
                              deadline=0.0, security={"capabilities": {"drop": ["ALL"]}})
    ident = {"namespace": "shop", "name": "web-1", "uid": live["metadata"]["uid"]}

    async def add_and_wait() -> Any:
        await eph_adapter.add_container(api_for({}), "shop", "web-1", container, live)
        return await eph_adapter.wait_container(api_for({}), ident, container["name"], 30,
                                                until_done=False)

    with pytest.raises(FaultFailed) as failed:
        asyncio.run(add_and_wait())
    assert "CreateContainerConfigError: container has runAsNonRoot and image will run as root" \
        in str(failed.value), str(failed.value)
    assert "runAsNonRoot: true" in failed.value.hint and "image" not in failed.value.hint
