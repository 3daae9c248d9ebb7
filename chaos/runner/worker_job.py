"""The run's side of `traffic.workers.kubernetes`: a Job of worker pods, held like a fault.

The runner listens as for remote workers (chaos.slo.traffic_remote) with a token it makes for
this run alone; the pods join it through `advertise`. Creating the Job follows the fault
protocol: a durable ledger `intent` whose revert spec deletes the Job and its Secret, then the
API calls, then `applied`. So the Job is gone after the run whatever ends it: this module's
`stop` at the end, the engine's cleanup (it reverts whatever the ledger shows open for the
run), the watchdog when the runner is killed, `chaos recover`, or `chaos recover --kubernetes`
by the Job's marks. The adapter side (manifests, calls, the revert spec) is
chaos.adapters.kubernetes.load_job.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chaos.errors import ChaosError, FaultFailed, truncate
from chaos.model.experiment import Experiment, Hypothesis, frozen
from chaos.safety.recover import revert_spec

if TYPE_CHECKING:
    from chaos.adapters.registry import AdapterRegistry
    from chaos.clock import Clock
    from chaos.safety.ledger_protocol import LedgerStore

log = logging.getLogger(__name__)

WHAT = "traffic.workers"  # the ledger's `fault` field for the Job
GRACE = 60.0  # past the pods' own deadline before the watchdog deletes the Job


class WorkerJob:
    """One run's worker Job: `hypothesis` (with the run's token) for the observer, `start`
    once the runner listens, `stop` when the traffic has stopped."""

    def __init__(self, run_id: str, experiment: Experiment, *, ledger: LedgerStore,
                 adapters: AdapterRegistry, clock: Clock) -> None:
        from chaos.adapters.kubernetes.load_job import LoadJob
        from chaos.adapters.kubernetes.selection import check_namespace

        hyp = experiment.hypothesis
        assert hyp is not None and hyp.traffic_kubernetes is not None
        spec = hyp.traffic_kubernetes
        self.run_id, self.ledger, self.adapters, self.clock = run_id, ledger, adapters, clock
        self.settings = experiment.kubernetes
        self.token = secrets.token_urlsafe(32)  # this run's alone; never in the experiment
        self.ident = f"{run_id}.traffic-workers"
        self.job = LoadJob(run_id, str(spec["namespace"]), str(spec["image"]),
                           int(spec["replicas"]), str(spec["advertise"]),
                           lifetime=experiment.limits.max_duration,
                           connect_within=float(spec["connect_within"]),
                           service_account=spec.get("service_account"))
        check_namespace(self.job.namespace, self.settings, "traffic.workers.kubernetes")
        self._listen = str(spec["listen"])
        self._spec = spec
        self._open = False
        self.failure = ""  # why deleting the Job failed: the run then exits 5, like a revert

    def hypothesis(self, hyp: Hypothesis) -> Hypothesis:
        """`hyp` with the Job's pods as its remote workers (the observer listens for them)."""
        remote = {"remote": self.job.replicas, "listen": self._listen, "token": self.token,
                  "connect_within": self._spec["connect_within"],
                  "max_clock_error": self._spec["max_clock_error"]}
        return replace(hyp, traffic_remote=frozen(remote))

    def revert_spec(self) -> dict[str, Any]:
        from chaos.adapters.kubernetes.load_job import LoadJobAdapter

        return LoadJobAdapter.spec_for(self.job, self.settings).to_json()

    async def start(self) -> None:
        """Intent, then the Job and its Secret, then applied; a failure deletes what was made
        and raises (cancelled: the engine's cleanup calls `stop`)."""
        from chaos.adapters.kubernetes.api import api_for
        from chaos.adapters.kubernetes.load_job import create_load_job

        spec, now = self.revert_spec(), self.clock.time()
        target = f"job {self.job.namespace}/{self.job.name} ({self.job.replicas} pods)"
        self.ledger.intents(self.run_id, [(self.ident, target, spec)], fault=WHAT,
                            deadline=now + self.job.lifetime + GRACE,
                            ends=now + self.job.lifetime)
        self._open = True
        try:
            await create_load_job(api_for(self.settings), self.job, self.token)
        except ChaosError:
            await self.stop()
            raise
        except Exception as exc:  # the client's own errors, past the adapter's mapping
            await self.stop()
            raise FaultFailed(f"traffic workers' Job in {self.job.namespace}: "
                              f"{type(exc).__name__}: {truncate(str(exc))}") from exc
        self.ledger.applied_all(self.run_id, {self.ident: None})

    async def stop(self) -> tuple[str, str]:
        """Delete the Job and its Secret (once; recorded in the ledger): (outcome, error)."""
        if not self._open:
            return "nothing", ""
        self._open = False
        outcome, error = await revert_spec(self.run_id, self.ident, self.revert_spec(),
                                           self.ledger, self.adapters, by="runner")
        if outcome == "failed":  # open in the ledger: the watchdog and `chaos recover` retry
            self.failure = (f"deleting the traffic workers' Job {self.job.namespace}/"
                            f"{self.job.name} failed: {error}")
            log.error("%s", self.failure)
        return outcome, error
