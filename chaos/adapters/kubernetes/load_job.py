"""Traffic workers as a Kubernetes Job: what a run creates so the load comes from the cluster.

`traffic.workers: {kubernetes: {...}}` runs `replicas` pods of `chaos traffic-worker --connect
<advertise>` (the k6-operator model: the runner's listener splits the schedule over whoever
joins, so each pod sends an equal share). What the pods need to prove themselves, the run's
token, is in a Secret the run creates next to the Job and the pods read through `secretKeyRef`:
it appears in no pod spec, no argv and no `kubectl describe`.

The Job and the Secret are written to the ledger before they are created, like a fault: the
revert spec (`LoadJobSpec`) deletes both, so the runner's cleanup, its watchdog after a
SIGKILL and `chaos recover` undo them through the adapter registry with no special case, and
`chaos recover --kubernetes` (sweep.py) finds them by their `chaos.dev/run` label once their
`chaos.dev/expires` has passed. Should every one of those be gone too, the pods still end by
themselves: `activeDeadlineSeconds` on the Job and `--max-duration` on the worker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from chaos.adapters.base import RevertOutcome, Scope, TargetRef
from chaos.adapters.kubernetes.api import Api, Gone, api_for, model
from chaos.adapters.kubernetes.connection import marks
from chaos.adapters.kubernetes.selection import ClusterAdapter, ClusterSpec, api_of_spec
from chaos.model.experiment import FaultSpec

WHAT = "traffic.workers"  # the chaos.dev/fault annotation on what a load Job creates
TOKEN_KEY = "token"
TOKEN_ENV = "CHAOS_WORKER_TOKEN"
CONTAINER = "traffic-worker"


@dataclass(frozen=True)
class LoadJob:
    """One run's worker Job, as declared (`traffic.workers.kubernetes`) and named for the run."""

    run_id: str
    namespace: str
    image: str
    replicas: int
    advertise: str  # HOST:PORT the pods connect to: the runner's listener, seen from the pods
    lifetime: float  # seconds: the pods' activeDeadlineSeconds and --max-duration
    connect_within: float = 60.0
    service_account: str | None = None
    resources: Mapping[str, Any] | None = None  # the container's requests/limits, as declared

    @property
    def name(self) -> str:
        return f"chaos-load-{self.run_id.lower()}"[:63].rstrip("-.")

    def secret(self, token: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             **marks(self.run_id, self.lifetime, WHAT)},
                "stringData": {TOKEN_KEY: token}}

    def job(self) -> dict[str, Any]:
        """The Job: `replicas` pods at once, none retried (a worker that fails makes the
        windows ERROR; a new one joining late would not get its share), each ending at its
        deadline by itself."""
        deadline = math.ceil(self.lifetime)
        container: dict[str, Any] = {
            "name": CONTAINER, "image": self.image,
            "command": ["chaos", "traffic-worker", "--connect", self.advertise,
                        "--max-duration", f"{deadline}s",
                        "--connect-within", f"{math.ceil(self.connect_within)}s"],
            "env": [{"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
                "name": self.name, "key": TOKEN_KEY}}}],
        }
        if self.resources:
            container["resources"] = {k: dict(v) for k, v in self.resources.items()}
        pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                               "activeDeadlineSeconds": deadline}
        if self.service_account:
            pod["serviceAccountName"] = self.service_account
        mark = marks(self.run_id, self.lifetime, WHAT)
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": self.name, "namespace": self.namespace, **mark},
                "spec": {"parallelism": self.replicas, "completions": self.replicas,
                         "backoffLimit": 0, "activeDeadlineSeconds": deadline,
                         "ttlSecondsAfterFinished": 600,
                         "template": {"metadata": {"labels": dict(mark["labels"])},
                                      "spec": pod}}}


@dataclass(frozen=True)
class LoadJobSpec(ClusterSpec):
    """The Job and Secret a run creates for its workers, by names chosen before they exist."""

    namespace: str = ""
    name: str = ""  # the Job's and the Secret's

    def to_json(self) -> dict[str, Any]:
        return {**self.head(), "namespace": self.namespace, "name": self.name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        cls.check_version(data)
        return cls(*cls.head_of(data), str(data["namespace"]), str(data["name"]))


async def create_load_job(api: Api, job: LoadJob, token: str) -> None:
    """The Job, then its Secret, owned by the Job so the cluster deletes it with the Job
    (also when the Job's TTL ends it). Pods that start before the Secret exists wait for it:
    the kubelet retries a missing `secretKeyRef`."""
    created = await api.call("create", "batch", "jobs", job.namespace,
                             "BatchV1Api.create_namespaced_job", job.namespace,
                             model("V1Job", job.job()))
    secret = job.secret(token)
    secret["metadata"]["ownerReferences"] = [{
        "apiVersion": "batch/v1", "kind": "Job", "name": job.name,
        "uid": str((created.get("metadata") or {}).get("uid") or "")}]
    await api.call("create", "", "secrets", job.namespace,
                   "CoreV1Api.create_namespaced_secret", job.namespace,
                   model("V1Secret", secret))


async def delete_load_job(api: Api, namespace: str, name: str) -> RevertOutcome:
    """The Job with its pods (background propagation: the API answers at once), then the
    Secret; either may be gone already (`chaos recover --kubernetes`, a person)."""
    outcomes = []
    for group, resource, method, options in (
            ("batch", "jobs", "BatchV1Api.delete_namespaced_job",
             {"propagation_policy": "Background"}),
            ("", "secrets", "CoreV1Api.delete_namespaced_secret", {})):
        try:
            await api.call("delete", group, resource, namespace, method, name, namespace,
                           **options)
            outcomes.append("reverted")
        except Gone:
            outcomes.append("gone")
    return "reverted" if "reverted" in outcomes else "gone"


class LoadJobAdapter(ClusterAdapter):
    """Serves no fault type: it exists so that a load Job's revert spec reaches
    `delete_load_job` through the adapter registry, wherever the revert runs."""

    name = "kubernetes.load-job"
    target_kind = "load-job"
    fault_types: ClassVar[tuple[str, ...]] = ()

    async def resolve(self, fault: FaultSpec, scope: Scope) -> list[TargetRef]:
        raise NotImplementedError("a load Job is started by the run, not by a fault")

    def prepare(self, fault: FaultSpec, target: TargetRef) -> dict[str, Any]:
        raise NotImplementedError("a load Job is started by the run, not by a fault")

    async def inject(self, fault: FaultSpec, target: TargetRef, spec: dict[str, Any],
                     scope: Scope) -> dict[str, Any]:
        raise NotImplementedError("a load Job is started by the run, not by a fault")

    async def revert(self, spec: Mapping[str, Any]) -> RevertOutcome:
        typed = LoadJobSpec.from_json(spec)
        return await delete_load_job(api_of_spec(spec), typed.namespace, typed.name)

    @staticmethod
    def spec_for(job: LoadJob, settings: Mapping[str, Any]) -> LoadJobSpec:
        """The revert spec for `job` in the cluster the experiment's `kubernetes:` names."""
        conn = api_for(settings).conn.as_spec()
        return LoadJobSpec(LoadJobAdapter.name, "delete", conn, job.namespace, job.name)

