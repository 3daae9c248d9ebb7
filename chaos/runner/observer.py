"""The engine's eyes: samples the hypothesis, judges its checks and raises guardrail breaches.

The engine owns one `Observer` per run with a hypothesis. It exists so that the engine is left with
the lifecycle and the revert guarantee, and so what is measured, and how it is judged, is in one
place. The observer never touches faults: when a guardrail is breached it calls the engine back
(`abort`), and the engine's own cancel-and-revert path does the rest.

Hypothesis sources run with the phases: probes (sampled open-loop every `every`), open-model traffic
(chaos.slo.traffic, from the start of BEFORE to cleanup) and Prometheus (queried at the end of
each window). Checks over traffic/Prometheus are judged every `during.every` over the last
`during.window`: `abort` ones revert at once, the first failing `during` check after the first
injection gives the time to detect. A window the traffic generator could not keep to is INVALID
(exit 2), never a pass or a failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chaos.clock import SYSTEM_CLOCK, Clock
from chaos.errors import ChaosError, ExitCode
from chaos.model.experiment import CheckSpec, Hypothesis
from chaos.records.journal import FINE_SECONDS, FINE_STEP
from chaos.runner.events import EventBus
from chaos.slo.checks import (MIN_EVENTS, CapacityCheck, Check, Evidence, Sample, SloCheck,
                              Status, Verdict, grammar)
from chaos.slo.probe_kinds import ProbeKinds
from chaos.slo.probes import Probe
from chaos.slo.sampler import Sampler

if TYPE_CHECKING:
    from chaos.slo.prometheus import Prometheus
    from chaos.slo.traffic import HttpTraffic, Window

MIN_SLO_EVENTS = 20  # default `min_events` for traffic and Prometheus windows
Until = list[tuple[str, "Check | SloCheck | CapacityCheck"]]  # a search's stop conditions


class Observer:
    """Samples one run's hypothesis and judges it, phase by phase; reports breaches to `abort`."""

    def __init__(self, hypothesis: Hypothesis, bus: EventBus, *,
                 abort: Callable[[ExitCode, str], None], stopping: Callable[[], bool],
                 on_probe_error: Callable[[ChaosError], None],
                 clock: Clock = SYSTEM_CLOCK, probes: ProbeKinds | None = None) -> None:
        self.hyp = hypothesis
        self.clock = clock
        self.bus = bus
        self._abort = abort  # the engine's cancel: revert everything now
        self._stopping = stopping  # the engine is already ending the run
        self.sampler = Sampler([Probe.from_spec(p, probes) for p in hypothesis.probes],
                               self.sampled, on_probe_error, clock=clock)
        self.traffic: HttpTraffic | None = None
        self.prometheus: Prometheus | None = None
        self.verdicts: dict[str, list[Verdict]] = {}
        self.recovery: float | None = None
        self.detected: float | None = None  # first injection -> first failing `during` check
        self._first_injection: float | None = None
        self._during_started: float | None = None
        self._guarding = False  # guardrails are checked during the during phase only
        self._watch_task: asyncio.Task[None] | None = None
        # per guardrail: the judgement that came closest to breaching it (or the breach)
        self._closest: dict[str, Verdict] = {}
        self._search_task: asyncio.Task[None] | None = None
        self.capacity: dict[str, object] | None = None
        self._injection = asyncio.Event()  # the first fault was applied
        self._injected_names: list[str] = []
        # each search: when it started (monotonic) and its result once it ended
        self._searches: list[tuple[float, asyncio.Future[dict[str, Any]]]] = []

    # --- sources
    def start_sources(self) -> None:
        hyp = self.hyp
        if hyp.traffic is not None:
            from chaos.slo.traffic import HttpTraffic, traffic_from_spec
            spec = traffic_from_spec(hyp.traffic, hyp.traffic_profile, hyp.traffic_mix)
            if hyp.traffic_workers > 1 or hyp.traffic_remote:  # worker processes, merged here
                from chaos.model.experiment import thaw
                raw = {"http": thaw(hyp.traffic), "profile": thaw(hyp.traffic_profile),
                       "mix": [thaw(m) for m in hyp.traffic_mix]}
                if hyp.traffic_remote:  # on other hosts, joining over TCP
                    from chaos.slo.traffic_remote import RemoteWorkerTraffic, RemoteWorkers
                    self.traffic = RemoteWorkerTraffic(
                        spec, raw, RemoteWorkers.from_spec(hyp.traffic_remote), self._on_second)
                else:
                    from chaos.slo.traffic_workers import WorkerTraffic
                    self.traffic = WorkerTraffic(spec, raw, hyp.traffic_workers,
                                                 self._on_second)
            else:
                self.traffic = HttpTraffic(spec, self._on_second)
            self.traffic.on_tick = self._on_tick
            profile = hyp.traffic_profile
            if profile and profile["kind"] == "breaking_point":
                self._search_task = asyncio.create_task(self._search(profile["spec"]),
                                                        name="breaking-point")
            self.traffic.start()
        if hyp.prometheus is not None:
            from chaos.slo.prometheus import Prometheus
            self.prometheus = Prometheus.from_spec(hyp.prometheus)

    async def sources_ready(self) -> None:
        """Windows start once traffic flows (worker processes need a moment to start)."""
        if self.traffic is not None:
            await self.traffic.ready()

    async def stop(self) -> None:
        if self._search_task is not None:
            self._search_task.cancel()
            await asyncio.gather(self._search_task, return_exceptions=True)
        await self.sampler.stop()
        if self.traffic is not None:
            await self.traffic.stop()

    async def _search(self, spec: Mapping[str, Any]) -> None:
        """The breaking point: judge each step of the rate whole, once its requests are in;
        stop at the first step where a stop condition holds (broken), or that the generator
        could not keep (INVALID: unknown, never "the service broke"); then hold `from`.
        With `under_fault`, search again from the first injection, the faults held."""
        from chaos.slo.checks import parse_check

        traffic = self.traffic
        assert traffic is not None
        await traffic.ready()
        until = [(text, parse_check(text, frozenset())) for text in spec["until"]]
        reverted: list[float] = []  # a search under fault is void once a fault is reverted
        if spec.get("under_fault"):
            self.bus.subscribe(lambda e: reverted.append(self.clock.monotonic())
                               if e.name == "fault.reverted" else None)
        baseline = await self._search_once(traffic, until, float(spec["from"]), None, reverted)
        if not spec.get("under_fault"):
            return
        await self._injection.wait()
        # the queue a broken step left behind is answered first, then what was sent at `from`
        # meanwhile: the second search starts on a drained service, like the first one
        for _ in range(5):
            since = self.clock.monotonic()
            await traffic.settle(since)
            if self.clock.monotonic() - since < 0.25:
                break
        await self._search_once(traffic, until, float(spec["from"]), baseline, reverted)

    async def _search_once(self, traffic: HttpTraffic, until: Until,
                           hold: float, baseline: dict[str, Any] | None,
                           reverted: list[float]) -> dict[str, Any]:
        """One search (the second one, after `baseline`, with the faults held), then hold
        `hold`; the result is emitted and kept even when the run ends first."""
        origin = 0.0 if baseline is None else traffic.follow(traffic.schedule)
        ended: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._searches.append((traffic.t0 + origin, ended))
        steps: list[dict[str, Any]] = []
        result: dict[str, Any] = {"sustainable_rate": None, "broken_at": None,
                                  "broken_by": None, "invalid": None, "steps": steps}
        try:
            await self._steps(traffic, until, steps, result, origin)
            stages = traffic.schedule.stages
            if baseline is not None and reverted and steps:
                last = stages[len(steps) - 1]
                if reverted[0] < traffic.t0 + origin + last.start + last.seconds:
                    steps[-1]["status"] = "invalid"
                    result.update(sustainable_rate=None, broken_at=None, broken_by=None,
                                  invalid=f"a fault was reverted before the step at "
                                          f"{last.rate:,.0f}/s ended: hold the faults as "
                                          "long as the search (and the backlog it starts "
                                          "after)")
        except asyncio.CancelledError:
            result["invalid"] = "the run ended before the search did"
            raise
        finally:
            traffic.hold(hold)
            if baseline is None:
                self.capacity = result
                self.bus.emit("capacity.measured", search="baseline", **result)
            else:
                result["faults"] = list(dict.fromkeys(self._injected_names))
                self.capacity = {**baseline, "under_fault": result}
                self.bus.emit("capacity.measured", search="under_fault", **result)
            ended.set_result(result)
        return result

    async def _steps(self, traffic: HttpTraffic, until: Until,
                     steps: list[dict[str, Any]], result: dict[str, Any],
                     origin: float = 0.0) -> None:
        for stage in traffic.schedule.stages:
            start = traffic.t0 + origin + stage.start
            end = start + stage.seconds
            await self.clock.sleep(max(0.0, end - self.clock.monotonic()))
            await traffic.settle(end)
            window = traffic.window(start, end)
            verdicts = [(text, check.evaluate(lambda _: window, stage.seconds, None,
                                              self.hyp.min_events or MIN_SLO_EVENTS))
                        for text, check in until if isinstance(check, SloCheck)]
            p99 = window.seen_quantile(99)
            step = {"rate": stage.rate, "requests": window.events, "errors": window.errors,
                    "p99": None if p99 is None else round(p99, 6), "status": "held"}
            steps.append(step)
            unsure = [v for _, v in verdicts if v.status in (Status.INVALID, Status.NO_DATA,
                                                             Status.ERROR)]
            broken = [text for text, v in verdicts if v.status is Status.PASS]
            if unsure:
                step["status"] = "invalid"
                result["invalid"] = f"at {stage.rate:,.0f}/s: " + unsure[0].describe() + (
                    f" - {unsure[0].reason}" if unsure[0].reason else "")
                return
            if broken:
                step["status"] = "broken"
                result.update(broken_at=stage.rate, broken_by=broken[0])
                return
            result["sustainable_rate"] = stage.rate

    def _on_second(self, second: int, window: Window) -> None:
        lag = window.lag_quantile(99)
        self.bus.emit("traffic.second", t=second, **_latencies(window),
                      lag_p99=None if lag is None else round(lag, 6))

    def _on_tick(self, tick: int, window: Window) -> None:
        """The first FINE_SECONDS of traffic per tick: a short run's journal keeps them."""
        if tick * FINE_STEP >= FINE_SECONDS:
            if self.traffic is not None:  # a long run: its journal keeps no ticks
                self.traffic.on_tick = None
            return
        self.bus.emit("traffic.tick", t=round(tick * FINE_STEP, 1), **_latencies(window))

    # --- the during phase: guardrails
    def guard(self, started: float) -> None:
        """The during phase started at `started`: judge guardrails until `unguard`."""
        self._during_started = started
        self._guarding = True
        if self.traffic or self.prometheus:
            self._watch_task = asyncio.create_task(self._watch(), name="guardrails")
            self._watch_task.add_done_callback(self._watch_ended)

    def _watch_ended(self, task: asyncio.Task[None]) -> None:
        """Faults must not go on unguarded: guardrails that broke end the run (reverting)."""
        if task.cancelled() or task.exception() is None or self._stopping():
            return
        exc = task.exception()
        self.bus.emit("guardrail.failed", error=f"{type(exc).__name__}: {exc}")
        self._abort(ExitCode.ABORTED, f"guardrails stopped working ({type(exc).__name__}: "
                                      f"{exc}); reverted rather than run unguarded")

    async def unguard(self) -> None:
        was_guarding, self._guarding = self._guarding, False
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        if was_guarding:  # how close each guardrail came, for the reports
            for spec in self.hyp.during.abort:
                closest = self._closest.get(spec.text)
                self.bus.emit("guardrail.evaluated", check=spec.text,
                              breached=closest is not None and closest.passed,
                              verdict=closest.as_dict() if closest else None)

    def _guardrail(self, text: str, verdict: Verdict) -> bool:
        """Keep the judgement closest to breaching; True (and abort) when it is breached."""
        if verdict.value is not None and not (
                (known := self._closest.get(text)) is not None and
                (known.passed or _margin(known) <= _margin(verdict))):
            self._closest[text] = verdict
        if verdict.status is not Status.PASS:  # the abort condition does not hold
            return False
        self._closest[text] = verdict
        self.bus.emit("guardrail.breached", check=text, verdict=verdict.as_dict())
        measured = verdict.check.format(verdict.value) if verdict.value is not None else "n/a"
        self._abort(ExitCode.ABORTED, f"guardrail breached: {text} (measured {measured})")
        return True

    def injected(self, fault: str = "") -> None:
        """A fault was applied: the time to detect counts from the first one (and a search
        under fault starts there)."""
        if fault:
            self._injected_names.append(fault)
        if self._first_injection is None:
            self._first_injection = self.clock.monotonic()
            self._injection.set()

    def sampled(self, sample: Sample) -> None:
        """A probe answered (the sampler calls this): recorded, and guardrails judged."""
        self.bus.emit("probe.sampled", probe=sample.probe, ok=sample.ok,
                      latency=round(sample.latency, 6), detail=sample.detail,
                      at=round(self.bus.elapsed(sample.at), 4))
        hyp = self.hyp
        if not self._guarding or self._stopping():
            return
        assert self._during_started is not None
        now = self.clock.monotonic()
        since = max(self._during_started, now - hyp.during.abort_window)
        recent = self.sampler.between(since, now + 1)
        for spec in hyp.during.abort:
            if not isinstance(spec.parsed, Check):
                continue  # judged by _watch
            verdict = spec.parsed.evaluate(recent, now - since, min_events=2)
            if self._guardrail(spec.text, verdict):
                return

    async def _watch(self) -> None:
        """Judge traffic/Prometheus guardrails and `during` checks every `during.every`."""
        hyp = self.hyp
        assert self._during_started is not None
        aborts = [c for c in hyp.during.abort if isinstance(c.parsed, SloCheck)]
        watched = [c for c in hyp.during.checks if isinstance(c.parsed, SloCheck)]
        while self._guarding and not self._stopping():
            await self.clock.sleep(hyp.during.every)
            now = self.clock.monotonic()
            since = max(self._during_started, now - hyp.during.abort_window)
            if self.detected is None and self._first_injection is not None:
                for spec in watched:
                    verdict = await self._judge(grammar(spec.parsed), since, now, [])
                    if verdict.status is Status.FAIL:
                        self.detected = round(now - self._first_injection, 3)
                        self.bus.emit("run.detected", after=self.detected, check=spec.text)
                        break
            for spec in aborts:
                verdict = await self._judge(grammar(spec.parsed), since, now, [])
                if self._guardrail(spec.text, verdict):
                    return

    # --- judging
    async def evaluate(self, phase: str, checks: tuple[CheckSpec, ...], start: float,
                       end: float, extra: list[Verdict] | None = None) -> bool:
        if self.traffic is not None:  # requests due in the window and still in flight count
            await self.traffic.settle(end)
        judged = {name for c in checks if isinstance(c.parsed, Check)
                  for name in (c.parsed.probes or (c.parsed.subject,))}
        await self.sampler.settle(end, judged)  # and so do the samples of the probes judged
        samples = self.sampler.between(start, end)
        verdicts = [_explained(await self._judge(grammar(c.parsed), start, end, samples))
                    for c in checks]
        verdicts += extra or []
        self.verdicts[phase] = verdicts
        self._per_stage(phase, start, end)
        for v in verdicts:
            self.bus.emit("check.evaluated", phase=phase, verdict=v.as_dict())
        passed = all(v.passed for v in verdicts)
        self.bus.emit("phase.finished", phase=phase, passed=passed)
        return passed

    def _per_stage(self, phase: str, start: float, end: float) -> None:
        """A window over several stages of a load profile is reported per stage too: one
        verdict over 100/s and 1000/s says little about either."""
        traffic = self.traffic
        if traffic is None:
            return
        spans = [(s, max(start, traffic.t0 + s.start), min(end, traffic.t0 + s.start + s.seconds))
                 for s in traffic.schedule.stages]
        spans = [(s, a, b) for s, a, b in spans if b > a]
        if len(spans) < 2:
            return
        for stage, a, b in spans:
            window = traffic.window(a, b)
            p99 = window.seen_quantile(99)  # timed-out requests at their timeout, as in charts
            self.bus.emit("traffic.stage", phase=phase, stage=stage.name, rate=stage.rate,
                          requests=window.events, errors=window.errors,
                          timeouts=window.bucket.timeouts,
                          p99=None if p99 is None else round(p99, 6))

    def failures(self, phase: str) -> str:
        return "; ".join(f"{v.describe()}{' - ' + v.reason if v.reason else ''}"
                         for v in self.verdicts.get(phase, []) if not v.passed)

    def invalid(self, phase: str) -> tuple[ExitCode, str] | None:
        """A phase that failed only because the measurement cannot be trusted: exit 2."""
        verdicts = [v for v in self.verdicts.get(phase, []) if not v.passed]
        if verdicts and any(v.status is Status.INVALID for v in verdicts) and not any(
                v.status is Status.FAIL for v in verdicts):
            return (ExitCode.INVALID, f"the measurement {phase} the faults is invalid: " +
                    self.failures(phase))
        return None

    async def _judge(self, check: Check | SloCheck | CapacityCheck, start: float, end: float,
                     samples: list[Sample], min_events: int | None = None) -> Verdict:
        hyp = self.hyp
        if isinstance(check, CapacityCheck):  # the newest search started by `end`, once ended
            started = [ended for at, ended in self._searches if at < end]
            return check.judge(await asyncio.shield(started[-1]) if started else None,
                               end - start)
        if isinstance(check, Check):
            return check.evaluate(samples, end - start, min_events or hyp.min_events or MIN_EVENTS)
        measured: dict[float | None, Evidence] = {}
        for seconds in (None, check.param if check.stat == "burn_rate" else None):
            since = start if seconds is None else end - seconds
            if self.prometheus is not None:
                measured[seconds] = await self.prometheus.evidence(check, end - since)
            else:
                assert self.traffic is not None
                measured[seconds] = self.traffic.window(since, end)
        return check.evaluate(measured.__getitem__, end - start,
                              hyp.slo.objective if hyp.slo else None,
                              min_events or hyp.min_events or MIN_SLO_EVENTS)

    # --- recovery
    async def measure_recovery(self, last_revert: float, limit: float) -> None:
        """Wait (at most `limit` after `last_revert`) until every check holds again."""
        phase = self.hyp.after
        checks = [c.parsed for c in self.hyp.checks if isinstance(c.parsed, Check)]
        slo = [c.parsed for c in self.hyp.checks if isinstance(c.parsed, SloCheck)]
        while (recovered := await self._recovered_at(last_revert, checks, slo)) is None:
            if self.clock.monotonic() - last_revert > limit:
                break
            await self.clock.sleep(min(0.05, phase.every))
        if recovered is not None:
            self.recovery = max(0.0, recovered - last_revert)
            self.bus.emit("run.recovered", after=round(self.recovery, 3))

    async def _recovered_at(self, since: float, checks: list[Check],
                            slo: list[SloCheck]) -> float | None:
        """When every check held again after `since`: probes on their latest answers, traffic
        and Prometheus on the window since `since` (at most `during.window` long)."""
        hyp = self.hyp
        done = self.sampler.recovered_at(since, checks) if self.sampler.probes else since
        if done is None or not slo:
            return done
        now = self.clock.monotonic()
        start = max(since, now - hyp.during.abort_window)
        for check in slo:
            if not (await self._judge(check, start, now, [])).passed:
                return None
        return max(done, now)


def _latencies(window: Window) -> dict[str, Any]:
    """A traffic bucket as the journal's series holds it: counts, and latency percentiles
    with timed-out requests at their timeout (for charts)."""
    def seconds(q: float) -> float | None:
        value = window.seen_quantile(q)
        return None if value is None else round(value, 6)
    return {"requests": window.events, "errors": window.errors, "p50": seconds(50),
            "p95": seconds(95), "p99": seconds(99)}


def _margin(verdict: Verdict) -> float:
    """How far a guardrail's measurement was from breaching it (smaller: closer)."""
    check, value = verdict.check, verdict.value
    assert value is not None
    if check.op in ("<", "<="):
        return value - check.threshold
    if check.op in (">", ">="):
        return check.threshold - value
    return abs(value - check.threshold)


def _explained(verdict: Verdict) -> Verdict:
    """A failing latency check fails on its latency: say so, not the last error an answer
    carried (an `HTTP 500` among fast answers is not why p95 is slow)."""
    check = verdict.check
    latency = (check.stat not in ("ratio", "recovery") if isinstance(check, Check)
               else check.stat.startswith("p") or check.stat == "fraction")
    if verdict.status is not Status.FAIL or not latency or verdict.value is None:
        return verdict
    subject = check.text.rsplit(check.op, 1)[0].strip()
    if math.isinf(verdict.value):
        reason = f"{subject}: no successful answer to measure a latency from" + (
            f" (last failure: {verdict.reason})" if verdict.reason else "")
    else:
        reason = (f"{subject} was {check.format(verdict.value)}, not {check.op} "
                  f"{check.format(check.threshold)}")
    return dataclasses.replace(verdict, reason=reason)
