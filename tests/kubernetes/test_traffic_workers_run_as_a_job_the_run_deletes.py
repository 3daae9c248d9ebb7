"""`traffic.workers.kubernetes`: the run creates a Job of worker pods and a Secret with their
token, and deletes both. Against the emulator, local `chaos traffic-worker` processes stand in
for the pods (started with the pod's command and the Secret's token once the Job exists). Seen
from outside: the logging server gets exactly the requests a single-process run of the same
schedule sends, the token is in no pod spec, the Job and Secret are gone after the run, the
watchdog deletes them after a SIGKILLed runner, and the manifests validate offline."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from chaos.adapters.kubernetes.load_job import LoadJob
from tests.conftest import ROOT, chaos_cmd, free_port, release, run_chaos, wait_until
from tests.support.arrival_log_server import ArrivalServer
from tests.support.kubernetes.emulator import JOBS, SECRETS, Emulator

pytestmark = pytest.mark.timeout(150)
SCHEDULE = "profile: {stages: [{rate: 200/s, for: 2s}, {rate: 0/s, for: 1m}]}"


def host_address() -> str:
    """A non-loopback address of this machine: what `advertise` must be (pods cannot reach
    the runner's loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
        except OSError:
            pytest.skip("no route off this machine: no address pods could reach")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("only loopback here")
    return address


class Kubelet:
    """Runs each Job's pods as local processes: the container's command, with the env var its
    secretKeyRef names set from the Secret (as a kubelet would)."""

    def __init__(self, k8s: Emulator, logs: Path) -> None:
        self.k8s, self.logs = k8s, logs
        self.pods: list[subprocess.Popen[bytes]] = []
        self.jobs: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            jobs = self.k8s.call(lambda c: [json.loads(json.dumps(o.raw)) for (res, _, _), o in
                                            list(c.objects.items())
                                            if res == JOBS and not o.deleted])
            for job in jobs:
                if job["metadata"]["name"] not in {j["metadata"]["name"] for j in self.jobs}:
                    self._start(job)

    def _start(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        [container] = spec["template"]["spec"]["containers"]
        [env] = container["env"]
        ref = env["valueFrom"]["secretKeyRef"]
        secret = None
        while secret is None and not self._stop.is_set():  # the kubelet waits for the Secret
            secret = self.k8s.call(lambda c: c.get(SECRETS, meta["namespace"], ref["name"]))
        assert secret is not None
        token = secret.get("stringData", {}).get(ref["key"]) or base64.b64decode(
            secret["data"][ref["key"]]).decode()
        self.jobs.append(job)
        self.tokens.append(token)
        assert container["command"][:2] == ["chaos", "traffic-worker"]
        for k in range(spec["parallelism"]):
            with open(self.logs / f"pod{k}.err", "wb") as err:
                self.pods.append(subprocess.Popen(
                    chaos_cmd(*container["command"][1:]), cwd=ROOT, stdout=subprocess.DEVNULL,
                    stderr=err, env={**os.environ, env["name"]: token}))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for pod in self.pods:
            if pod.poll() is None:
                release(pod)
            pod.wait(10)


@pytest.fixture
def kubelet(k8s: Emulator, tmp_path: Path) -> Iterator[Kubelet]:
    made = Kubelet(k8s, tmp_path)
    yield made
    made.close()


def experiment(path: Path, port: int, workers: str, faults: str = "[]") -> Path:
    path.write_text(f"""title: load from the cluster
kubernetes: {{namespaces: [load]}}
hypothesis:
  traffic:
    http: {{url: "http://127.0.0.1:{port}/", max_lag: 250ms}}
    {SCHEDULE}
    {workers}
  checks: [availability >= 99%]
  before: {{window: 4s}}
faults: {faults}
""")
    return path


def served(tmp_path: Path, name: str, workers: str) -> tuple[int, int, str]:
    """(requests the server saw, requests the journal counted, the journal and output)."""
    server = ArrivalServer(tmp_path / f"{name}.log")
    try:
        path = experiment(tmp_path / f"{name}.yaml", server.port, workers)
        (tmp_path / name).mkdir()
        result = run_chaos("run", str(path), cwd=tmp_path / name,
                           env={"CHAOS_RUNS_DIR": str(tmp_path / name)})
        assert result.returncode == 0, result.stdout + result.stderr
        arrived = len(server.arrivals())
    finally:
        server.close()
    text = next((tmp_path / name).rglob("journal.json")).read_text()
    journal = json.loads(text)
    return arrived, sum(s["requests"] for s in journal["series"]), text + result.stdout + (
        result.stderr)


def test_two_pods_send_exactly_what_one_process_sends_and_leave_nothing(
        k8s: Emulator, kubelet: Kubelet, state_dir: Path, tmp_path: Path) -> None:
    address = f"{host_address()}:{free_port()}"
    workers = (f"workers: {{kubernetes: {{replicas: 2, namespace: load, image: chaos:test, "
               f'listen: "{address}", advertise: "{address}"}}}}')

    alone = served(tmp_path, "alone", "")
    pods = served(tmp_path, "pods", workers)

    assert alone[:2] == (400, 400), alone
    assert pods[:2] == alone[:2], pods
    assert len(kubelet.pods) == 2 and all(p.wait(30) == 0 for p in kubelet.pods)
    [job] = kubelet.jobs
    assert job["metadata"]["labels"]["chaos.dev/run"]
    assert job["metadata"]["annotations"]["chaos.dev/expires"]
    pod = job["spec"]["template"]["spec"]
    assert pod["activeDeadlineSeconds"] == job["spec"]["activeDeadlineSeconds"] == 600
    assert "--max-duration" in pod["containers"][0]["command"]
    # the token reaches the pods through the Secret only: no literal env value, not in argv,
    # not in the journal or the runner's output
    [token] = kubelet.tokens
    assert len(token) >= 32 and token not in pods[2]
    assert pod["containers"][0]["env"] == [{"name": "CHAOS_WORKER_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": job["metadata"]["name"], "key": "token"}}}]
    name = job["metadata"]["name"]
    assert k8s.call(lambda c: c.get(JOBS, "load", name)) is None
    assert k8s.call(lambda c: c.get(SECRETS, "load", name)) is None
    # held like a fault: intent before the Job existed, deleted by the run itself (not left
    # to its watchdog, which deletes what a finished run left open)
    records = [json.loads(line) for path in (state_dir / "ledger").glob("*.jsonl")
               for line in path.read_text().splitlines()]
    mine = [r for r in records if str(r.get("id")).endswith(".traffic-workers")]
    assert [r["event"] for r in mine] == ["intent", "applied", "reverted"], mine
    assert mine[0]["revert"]["adapter"] == "kubernetes.load-job"
    assert mine[-1]["by"] == "runner" and mine[-1]["outcome"] == "reverted", mine
    assert (mine[0]["revert"]["namespace"], mine[0]["revert"]["name"]) == ("load", name)


def test_a_job_the_run_cannot_delete_fails_the_run_like_a_failed_revert(
        k8s: Emulator, kubelet: Kubelet, state_dir: Path, tmp_path: Path) -> None:
    address = f"{host_address()}:{free_port()}"
    k8s.call(lambda c: c.deny.add(("delete", "batch", "jobs")))
    server = ArrivalServer(tmp_path / "arrivals.log")
    try:
        path = experiment(tmp_path / "denied.yaml", server.port,
                          f"workers: {{kubernetes: {{replicas: 1, namespace: load, "
                          f'image: chaos:test, listen: "{address}", advertise: "{address}"}}}}')
        result = run_chaos("run", str(path), cwd=tmp_path)
    finally:
        server.close()
    out = result.stdout + result.stderr
    assert result.returncode == 5, out
    assert "deleting the traffic workers' Job load/chaos-load-" in out, out
    assert "not allowed to delete batch/jobs" in out, out


def test_the_watchdog_deletes_the_job_of_a_killed_runner(
        k8s: Emulator, kubelet: Kubelet, state_dir: Path, tmp_path: Path) -> None:
    address = f"{host_address()}:{free_port()}"
    server = ArrivalServer(tmp_path / "arrivals.log")
    path = experiment(tmp_path / "killed.yaml", server.port,
                      f"workers: {{kubernetes: {{replicas: 1, namespace: load, "
                      f'image: chaos:test, listen: "{address}", advertise: "{address}"}}}}')
    env = {**os.environ, "CHAOS_HEARTBEAT_TIMEOUT": "2"}
    with open(tmp_path / "runner.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", str(path)), env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        joined = wait_until(lambda: kubelet.pods and "clock offset" in (
            tmp_path / "pod0.err").read_text(), 30)
        assert joined is not None, (tmp_path / "runner.log").read_text()
        name = kubelet.jobs[0]["metadata"]["name"]
        runner.kill()
        runner.wait(5)
        gone = wait_until(lambda: k8s.call(lambda c: c.get(JOBS, "load", name)) is None and
                          k8s.call(lambda c: c.get(SECRETS, "load", name)) is None, 30)
        assert gone is not None, "the watchdog did not delete the Job and its Secret"
        assert kubelet.pods[0].wait(30) == 0  # the worker heard the runner go and ended
    finally:
        release(runner)
        runner.wait(10)
        server.close()


def test_recover_kubernetes_deletes_the_job_when_runner_and_watchdog_were_killed(
        k8s: Emulator, kubelet: Kubelet, state_dir: Path, tmp_path: Path) -> None:
    """From the cluster's marks alone: another machine, no ledger, the Job not expired yet
    (so --force)."""
    address = f"{host_address()}:{free_port()}"
    server = ArrivalServer(tmp_path / "arrivals.log")
    path = experiment(tmp_path / "killed.yaml", server.port,
                      f"workers: {{kubernetes: {{replicas: 1, namespace: load, "
                      f'image: chaos:test, listen: "{address}", advertise: "{address}"}}}}')
    with open(tmp_path / "runner.log", "wb") as log:
        runner = subprocess.Popen(chaos_cmd("run", str(path)), cwd=tmp_path, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: kubelet.pods, 30) is not None, (
            tmp_path / "runner.log").read_text()
        name = kubelet.jobs[0]["metadata"]["name"]
        [ledger] = (state_dir / "ledger").glob("*.jsonl")
        [guard] = [json.loads(line) for line in ledger.read_text().splitlines()
                   if json.loads(line)["event"] == "watchdog"]
        os.kill(guard["pid"], signal.SIGKILL)
        runner.kill()
        runner.wait(5)
        assert k8s.call(lambda c: c.get(JOBS, "load", name)) is not None  # left behind

        elsewhere = {"CHAOS_STATE_DIR": str(tmp_path / "another-machine")}
        skipped = run_chaos("recover", "--kubernetes", "-n", "load", env=elsewhere)
        assert f"job load/{name}" in skipped.stdout and "skipped (held until" in skipped.stdout
        assert k8s.call(lambda c: c.get(JOBS, "load", name)) is not None
        result = run_chaos("recover", "--kubernetes", "-n", "load", "--force", env=elsewhere)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"job load/{name}" in result.stdout, result.stdout
        assert k8s.call(lambda c: c.get(JOBS, "load", name)) is None
        assert k8s.call(lambda c: c.get(SECRETS, "load", name)) is None
    finally:
        release(runner)
        runner.wait(10)
        server.close()


def test_recover_kubernetes_deletes_an_expired_load_job(
        k8s: Emulator, state_dir: Path) -> None:
    job = LoadJob("20261204T000000-abcdef", "load", "chaos:test", 3, "10.0.0.5:7070",
                  lifetime=-120.0)  # expired already

    def leftovers(c: Any) -> None:
        c.put(JOBS, job.job())
        c.put(SECRETS, job.secret("a-token-from-a-lost-run"))

    k8s.call(leftovers)
    result = run_chaos("recover", "--kubernetes", "--namespace", "load")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"job load/{job.name}" in result.stdout, result.stdout
    assert k8s.call(lambda c: c.get(JOBS, "load", job.name)) is None
    assert k8s.call(lambda c: c.get(SECRETS, "load", job.name)) is None


def test_the_manifests_validate_offline() -> None:
    job = LoadJob("20261204T000000-abcdef", "load", "ghcr.io/chaos-runner/chaos:0.1.0", 10,
                  "10.0.0.5:7070", lifetime=600.0, service_account="load")
    for doc in (job.job(), job.secret("t0ken")):
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    broken = {**job.job(), "spec": {**job.job()["spec"], "parallelism": "ten"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
