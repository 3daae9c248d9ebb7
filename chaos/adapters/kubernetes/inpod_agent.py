"""The in-pod agent: what an ephemeral container runs to hold a fault inside a pod, and end it.

    python -m chaos.adapters.kubernetes.inpod_agent hold --id ID --deadline EPOCH --max-for S \\
        --fault network.loss --target '{"device": "eth0"}' --with '{"percent": 0.2}'
    python -m chaos.adapters.kubernetes.inpod_agent stop <the same arguments>
    python -m chaos.adapters.kubernetes.inpod_agent kill --signal TERM --deadline EPOCH

An ephemeral container shares the pod's network namespace, so `hold` injects with the very
adapters chaos uses on a host — the kernel adapter (tc tbf/netem with the qdisc snapshot and
the `ca05:` handle, nftables table `chaos_<id>`) and the resource adapter (self-limiting burner
workers) — and reverts with them; http.* faults run the HTTP fault proxy in the agent's own
process behind an nft redirect of the application's port (chaos.adapters.kubernetes.inpod_http). Nothing is rewritten for pods; only the names are made
deterministic from the injection id, so a second process can find them.

The fault is bounded inside the pod, whoever else vanishes: `hold` reverts at the earlier of its
wall-clock `--deadline` and `--max-for` seconds after it started (a node clock behind the
runner's cannot stretch the fault), on SIGTERM (the pod is deleted), and when told to over an
abstract unix socket named `chaos-inpod-<id>`. Abstract sockets belong to the network namespace,
so any container of the pod reaches it, with no shared volume. `stop` (run by the revert, in a
second ephemeral container) sends that message, waits for the agent's own revert, and then
removes the rules itself (idempotent) — which covers an agent that died without reverting.
Ephemeral containers are never restarted, so an agent that ended never injects again.

`kill` runs in an ephemeral container that targets a container (`targetContainerName`): it shares
that container's process namespace, where the container's main process is PID 1.

`hold` prints `ready: ...` once the fault is in place; the runner reads that line from
pods/log (a container's "running" comes before the agent has done anything). `kill`
carries a `--deadline` and sends nothing after it (a container the kubelet starts late).

Each command prints one result line, also written to the termination log (the pod status shows
it as the container's termination message), and exits 0, or with the ChaosError's exit code.
It imports the local adapters and nothing of `kubernetes`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from chaos.adapters.base import Adapter, TargetRef
from chaos.adapters.kubernetes.ephemeral_spec import RECIPES as POD_RECIPES
from chaos.adapters.local.kernel_recipes import RECIPES as KERNEL_RECIPES
from chaos.errors import ChaosError, FaultFailed, PermissionDenied, UsageError, truncate
from chaos.model.experiment import FaultSpec, Target, frozen

SOCKET_PREFIX = "chaos-inpod-"
TERMINATION_LOG = "/dev/termination-log"
STOP = b"stop\n"
STOP_TIMEOUT = 30.0  # the agent's revert (tc, nft, killing workers) takes well under a second


def socket_address(injection_id: str) -> str:
    """The abstract unix socket (leading NUL: no file, scoped to the network namespace)."""
    return "\0" + SOCKET_PREFIX + injection_id


class PodScope:
    """The Scope the local adapters get inside the pod: no services, no randomness."""

    seed = 0
    run_id = ""  # the runner's id travels in the container's env, not through the scope

    def service_pid(self, name: str) -> int | None:
        return None

    async def restart_service(self, name: str, signal_name: str | None) -> None:
        raise UsageError("services are not available inside a pod")


Built = tuple[Adapter, str, dict[str, Any], dict[str, Any]]  # adapter, kind, selector, identity


@dataclass(frozen=True)
class Holder:
    """A way the agent holds a fault: the local adapter and target it builds from the target
    filters, and the adapter's revert spec with names derived from the injection id instead
    of random ones (so `stop`, a second process, finds what `hold` created)."""

    build: Callable[[dict[str, Any]], Built]
    named: Callable[[Mapping[str, Any], str], dict[str, Any]]


def _kernel(selector: dict[str, Any]) -> Built:
    from chaos.adapters.local.kernel import InterfaceAdapter

    selector = {"device": "eth0", **selector}
    return InterfaceAdapter(), "interface", selector, {"netns": None,
                                                      "device": selector["device"]}


def _kernel_named(spec: Mapping[str, Any], injection_id: str) -> dict[str, Any]:
    from chaos.adapters.local.kernel import KernelSpec

    return KernelSpec.from_json(spec).named(injection_id).to_json()


def _resource(selector: dict[str, Any]) -> Built:
    from chaos.adapters.local.resource import HostResourceAdapter

    # the identity is what `stop` needs; `hold` uses the target resolve returns
    return HostResourceAdapter(), "host", {"name": "local"}, {"plan": {}}


def _resource_named(spec: Mapping[str, Any], injection_id: str) -> dict[str, Any]:
    from chaos.adapters.local.resource import ResourceSpec

    return replace(ResourceSpec.from_json(spec), tag=injection_id).to_json()


def _http(selector: dict[str, Any]) -> Built:
    from chaos.adapters.kubernetes.inpod_http import InPodHttpProxy

    return InPodHttpProxy(), "pods", selector, {"port": selector.get("port")}


def _http_named(spec: Mapping[str, Any], injection_id: str) -> dict[str, Any]:
    from chaos.adapters.local.kernel import TABLE_PREFIX

    return {**spec, "nft": {**spec["nft"], "table": TABLE_PREFIX + injection_id}}


HOLDERS: Mapping[str, Holder] = {"kernel": Holder(_kernel, _kernel_named),
                                 "resource": Holder(_resource, _resource_named),
                                 "http": Holder(_http, _http_named)}


def holder_of(fault_type: str) -> str | None:
    """How the agent holds a fault type: every kernel recipe as on a host (more than the pod
    adapters serve), the rest as ephemeral_spec.RECIPES says."""
    if fault_type in KERNEL_RECIPES:
        return "kernel"
    recipe = POD_RECIPES.get(fault_type)
    return recipe.holder if recipe is not None else None


def local_fault(args: argparse.Namespace) -> tuple[Adapter, FaultSpec, TargetRef]:
    """The local adapter, fault and target that hold `args.fault` from inside the pod."""
    holder = holder_of(args.fault)
    if holder is None:
        raise UsageError(f"the in-pod agent cannot hold {args.fault}")
    adapter, kind, selector, identity = HOLDERS[holder].build(json.loads(args.target))
    fault = FaultSpec(index=0, name=args.name or f"inpod-{args.id}", type=args.fault,
                      target=Target(kind, frozen(selector)),
                      params=frozen(json.loads(args.params)), start=0.0,
                      duration=max(0.0, args.deadline - time.time()))
    return adapter, fault, TargetRef(kind, kind, identity, lock_key=args.id)


def named(fault: FaultSpec, spec: Mapping[str, Any], injection_id: str) -> dict[str, Any]:
    """The adapter's revert spec with names derived from the id instead of random ones."""
    return HOLDERS[str(holder_of(fault.type))].named(spec, injection_id)


def report(args: argparse.Namespace, line: str) -> None:
    print(line, flush=True)
    try:
        with open(args.report, "w") as log:
            log.write(line[:4000])  # the kubelet keeps at most 4096 bytes
    except OSError:
        pass  # outside Kubernetes there is no termination log


def failure(error: ChaosError) -> str:
    return f"error: {error}" + (f" (what to do: {error.hint})" if error.hint else "")


def _bind(injection_id: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(socket_address(injection_id))
    except OSError as exc:
        sock.close()
        raise FaultFailed(f"another agent already holds injection {injection_id} in this "
                          f"network namespace ({exc.strerror})") from exc
    sock.listen(8)
    sock.setblocking(False)
    return sock


async def hold(args: argparse.Namespace) -> int:
    started = time.monotonic()
    until = min(started + args.max_for, time.monotonic() + args.deadline - time.time())
    if time.monotonic() >= until:
        report(args, "ended: the deadline passed before the agent started; nothing injected")
        return 0
    adapter, fault, target = local_fault(args)
    listener = _bind(args.id)  # first: a duplicate id is refused before anything is touched
    stop = asyncio.Event()
    waiters: list[asyncio.StreamWriter] = []
    done: list[str] = []  # the result line, for a stop that arrives while the agent ends

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await asyncio.wait_for(reader.readline(), 5.0) == STOP:
                if not done:
                    waiters.append(writer)
                    stop.set()
                    return
                writer.write(done[0].encode() + b"\n")
                await writer.drain()
        except (TimeoutError, OSError):
            pass
        writer.close()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    spec: dict[str, Any] = {}
    try:
        target = (await adapter.resolve(fault, PodScope()))[0]
        spec = named(fault, adapter.prepare(fault, target), args.id)
        spec = await adapter.inject(fault, target, spec, PodScope())
    except ChaosError as exc:
        listener.close()
        report(args, failure(exc))
        return int(exc.exit_code)
    server = await asyncio.start_unix_server(on_client, sock=listener)
    print(f"ready: {fault.type} held until {args.deadline:.3f} "
          f"(at most {args.max_for:g}s)", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), max(0.0, until - time.monotonic()))
        why = "stopped" if waiters else "signalled"
    except TimeoutError:
        why = "deadline"
    try:
        outcome = await adapter.revert(spec)
        line, code = f"reverted ({why}): {outcome}", 0
    except ChaosError as exc:
        line, code = failure(exc), int(exc.exit_code)
    report(args, line)
    done.append(line)
    for writer in waiters:  # a client gone by now changes nothing: the line says the revert
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
    server.close()
    return code


async def ask_to_stop(injection_id: str, timeout: float = STOP_TIMEOUT,
                      wait: float = 0.0) -> str | None:
    """The agent's answer to "stop" once it has reverted; None when no agent listens, after
    up to `wait` seconds for one that is starting (its container runs; python imports)."""
    end = time.monotonic() + wait
    while True:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(socket_address(injection_id)), timeout)
            break
        except (ConnectionRefusedError, FileNotFoundError):
            if time.monotonic() >= end:
                return None
            await asyncio.sleep(0.1)
        except (TimeoutError, OSError) as exc:  # `stop` must still remove the leftovers itself
            return f"error: the agent did not take the stop message: {str(exc) or 'timed out'}"
    try:
        writer.write(STOP)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), timeout)
    except (TimeoutError, OSError) as exc:  # hung or dying agent: said, then cleaned up anyway
        return f"error: the agent did not answer the stop message: {str(exc) or 'timed out'}"
    finally:
        writer.close()
    return answer.decode(errors="replace").strip() or None


async def stop(args: argparse.Namespace) -> int:
    answer = await ask_to_stop(args.id, wait=args.wait)
    adapter, fault, target = local_fault(args)
    try:  # idempotent: "gone" when the agent already removed everything
        leftover = await adapter.revert(named(fault, adapter.prepare(fault, target), args.id))
    except ChaosError as exc:
        report(args, failure(exc))
        return int(exc.exit_code)
    agent = answer or "no agent was running"
    report(args, f"stopped: agent: {agent}; leftovers: {leftover}")
    return 1 if answer and answer.startswith("error") else 0


def handled(pid: int) -> list[str]:
    """The signals the process has a handler for (SigCgt in /proc/PID/status), by name."""
    with open(f"/proc/{pid}/status") as status:
        return handled_in(status.read())


def handled_in(status: str) -> list[str]:
    """The signals a /proc/PID/status text says the process handles (the exec fallback reads
    that text through `cat` in the target container)."""
    mask = next((int(line.split()[1], 16) for line in status.splitlines()
                 if line.startswith("SigCgt:")), 0)
    return [sig.name[3:] for sig in signal.Signals if mask >> (sig.value - 1) & 1]


def dropped(what: str, signal_name: str, catches: list[str]) -> PermissionDenied:
    """The refusal of a signal PID 1 does not handle: the kernel would drop it."""
    return PermissionDenied(
        f"the container's main process ({what or 'pid 1'}) is PID 1 of its process "
        f"namespace and does not handle SIG{signal_name}; the kernel drops that signal "
        "when it comes from inside the pod, so nothing was sent",
        hint=f"set `signal:` to one it handles ({', '.join(catches) or 'none'}), or "
             "use pod.delete (grace_period: 1s stops the container within a second)")


def _uids(pid: int) -> tuple[int, int]:
    """The real and saved UIDs of a process (the ones kill(2) compares), from /proc."""
    with open(f"/proc/{pid}/status") as status:
        fields = next(line.split()[1:] for line in status if line.startswith("Uid:"))
    return int(fields[0]), int(fields[2])


def not_permitted(pid: int, what: str) -> PermissionDenied:
    """kill(2)'s EPERM, with the users involved: the sender needs the target's UID or KILL."""
    try:
        uid = _uids(pid)[0]
    except (OSError, StopIteration, ValueError, IndexError):
        uid = -1
    return PermissionDenied(
        f"not permitted to signal pid {pid} ({what}): it runs as uid {uid}, this kill "
        f"container as uid {os.getuid()} without the KILL capability",
        hint="set runAsUser on the target container (or its pod) so chaos runs the kill "
             "container as that user, or allow the KILL capability (Pod Security 'baseline')")


def kill(args: argparse.Namespace) -> int:
    signum = int(signal.Signals["SIG" + args.signal])
    try:
        if args.deadline and time.time() > args.deadline:
            # started late (a slow image pull the kubelet retried): the runner has long
            # reported this fault failed, so a signal now would be unannounced
            report(args, f"ended: started after its deadline ({args.deadline:.3f}); "
                         "nothing was sent")
            return 0
        if os.getpid() == args.pid:
            raise PermissionDenied(
                f"the kill container is itself pid {args.pid} of its process namespace: the "
                "container runtime did not join it to the target container's "
                "(targetContainerName), so there is no main process here to signal",
                hint="the node's runtime must support targetContainerName (containerd 1.5+, "
                     "CRI-O 1.22+); or use pod.delete")
        with open(f"/proc/{args.pid}/cmdline", "rb") as cmdline:
            # Cut: a JVM's command line alone would push the reason out of the 400 characters
            # the runner shows of this report.
            what = truncate(cmdline.read().replace(b"\0", b" ").decode(errors="replace"), 80)
        if args.pid == 1 and what.split(" ")[0].endswith("/pause"):
            raise PermissionDenied("PID 1 here is the pod's pause process: the pod shares one "
                                   "process namespace, and signalling it would end the pod",
                                   hint="use pod.delete")
        catches = handled(args.pid) if args.pid == 1 else [args.signal]
        if args.signal not in catches:
            # The kernel drops signals a PID namespace's init does not handle when they come
            # from inside the namespace — SIGKILL always — so sending one would do nothing.
            raise dropped(what, args.signal, catches)
        try:
            os.kill(args.pid, 0)  # the permission check alone: EPERM says which users differ
        except PermissionError as exc:
            raise not_permitted(args.pid, what) from exc
        # Said first: when PID 1 dies, the kernel kills every process of its namespace, this
        # agent included, possibly before it could write another line.
        report(args, f"killed: sent SIG{args.signal} to pid {args.pid} ({what})")
        os.kill(args.pid, signum)
    except ChaosError as exc:
        report(args, failure(exc))
        return int(exc.exit_code)
    except (OSError, ValueError) as exc:
        report(args, f"error: cannot signal pid {args.pid}: {exc}")
        return 4
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="chaos-inpod-agent")
    root.add_argument("--report", default=TERMINATION_LOG, help="termination message file")
    sub = root.add_subparsers(dest="command", required=True)
    for name in ("hold", "stop"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--id", required=True)
        cmd.add_argument("--name", default="", help="the fault's name, for messages")
        cmd.add_argument("--deadline", type=float, required=True, help="end, epoch seconds")
        cmd.add_argument("--max-for", type=float, required=True,
                         help="end at most this many seconds after the agent starts")
        cmd.add_argument("--fault", required=True)
        cmd.add_argument("--target", default="{}", help="JSON: device and kernel filters")
        cmd.add_argument("--with", dest="params", default="{}", help="JSON: fault parameters")
        if name == "stop":
            cmd.add_argument("--wait", type=float, default=0.0,
                             help="seconds to wait for a starting agent's socket")
    kill_cmd = sub.add_parser("kill")
    kill_cmd.add_argument("--signal", default="TERM")
    kill_cmd.add_argument("--pid", type=int, default=1)
    kill_cmd.add_argument("--deadline", type=float, default=0.0,
                          help="epoch seconds after which it sends nothing (0: none)")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "kill":
        return kill(args)
    try:
        return asyncio.run(hold(args) if args.command == "hold" else stop(args))
    except ChaosError as exc:
        report(args, failure(exc))
        return int(exc.exit_code)
    except ValueError as exc:  # malformed JSON arguments: a bug in the caller, said plainly
        report(args, f"error: bad agent arguments: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - the pod status must say why, not a traceback
        report(args, f"error: the in-pod agent failed: {type(exc).__name__}: {exc}")
        return 4


if __name__ == "__main__":
    sys.exit(main())
