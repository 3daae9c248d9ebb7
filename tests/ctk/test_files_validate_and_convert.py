"""`chaos validate` accepts Chaos Toolkit files and reports every problem at once, located;
`chaos run` refuses invalid ones before anything runs; `chaos convert` writes a native
experiment the native loader accepts and runs, and lists with file:line what it left out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psutil
import yaml

from tests.conftest import WebServer, run_chaos
from tests.ctk.conftest import FIXTURES

RUNNABLE = ["providers.yaml", "tolerances.json", "deviates-after.yaml", "before-not-met.yaml",
            "probe-fails-after.yaml", "config-secrets.yaml", "pauses-background.yaml",
            "controls.yaml", "long-background.yaml", "continuous.yaml",
            "suspend-with-our-fault.yaml", "rollback-fails.yaml"]


def test_every_fixture_validates(state_dir: Path) -> None:
    result = run_chaos("validate", *(str(FIXTURES / f) for f in RUNNABLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (Chaos Toolkit experiment") == len(RUNNABLE)


def test_every_problem_is_reported_at_once_where_it_is(state_dir: Path) -> None:
    path = str(FIXTURES / "invalid.yaml")
    result = run_chaos("validate", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    located = re.findall(rf"^  {re.escape(path)}:(\d+):\d+: (\S+): ", result.stderr,
                         re.MULTILINE)
    assert [(int(line), field) for line, field in located] == [
        (1, "title"), (4, "runtime.rollbacks.strategy"),
        (10, "steady-state-hypothesis.probes[0].tolerance"),
        (12, "steady-state-hypothesis.probes[1]"), (17, "method[0].ref"), (18, "method[1]"),
        (21, "rollbacks[0]")]
    assert "no_such_module_here" in result.stderr and "unterminated" in result.stderr


def test_run_refuses_an_invalid_file_before_running_anything(tmp_path: Path,
                                                             state_dir: Path) -> None:
    result = run_chaos("run", str(FIXTURES / "invalid.yaml"), "--runs-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "nothing was run" in result.stderr
    assert not (tmp_path / "r").exists() and not (state_dir / "ledger").exists()


def test_convert_writes_what_converts_and_lists_what_does_not(tmp_path: Path,
                                                              state_dir: Path) -> None:
    out = tmp_path / "native.yaml"
    source = FIXTURES / "to-convert.yaml"
    result = run_chaos("convert", str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(out.read_text())
    assert [p["name"] for p in doc["hypothesis"]["probes"]] == ["home-page", "true-exits-0"]
    assert doc["hypothesis"]["checks"] == ["home-page >= 100%", "true-exits-0 >= 100%"]
    assert [(f["type"], f.get("start")) for f in doc["faults"]] == [
        ("process.suspend", None), ("process.kill", "5s"), ("pod.delete", "5s")]
    assert doc["faults"][1]["target"] == {"process": {"cmdline": "some-worker-that-does-not-exist"}}
    assert doc["faults"][2]["target"] == {"pods": {"namespace": "shop", "labels": {"app": "web"}},
                                          "count": 2}
    skipped = re.findall(rf"^{re.escape(str(source))}:(\d+):\d+: (\S+) \((.+?)\): not converted",
                         result.stderr, re.MULTILINE)
    assert [(int(line), path, name) for line, path, name in skipped] == [
        (12, "steady-state-hypothesis.probes[2]", "python probe"),
        (24, "method[3]", "shell pipeline"), (29, "rollbacks[1]", "custom rollback")]
    assert "CONVERT_TOKEN" in result.stderr  # where a configuration value came from
    assert run_chaos("validate", str(out)).returncode == 0


def test_a_converted_experiment_runs_natively(tmp_path: Path, state_dir: Path,
                                              web_server: WebServer,
                                              sleeper: psutil.Process) -> None:
    source = tmp_path / "small.yaml"
    doc = yaml.safe_load((FIXTURES / "to-convert.yaml").read_text())
    doc["method"] = doc["method"][:1]  # the freeze; no pkill or pods here
    source.write_text(yaml.safe_dump(doc))
    out = tmp_path / "native.yaml"
    assert run_chaos("convert", str(source), "-o", str(out)).returncode == 0
    runs = tmp_path / "runs"
    result = run_chaos("run", str(out), "--runs-dir", str(runs), "--var",
                       f"base_url=http://127.0.0.1:{web_server.port}",
                       "--var", f"target_pid={sleeper.pid}")
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads(next(runs.glob("*/journal.json")).read_text())
    assert [(i["type"], i["outcome"]) for i in journal["injections"]] == [
        ("process.suspend", "reverted")]
    assert journal["injections"][0]["identity"]["pid"] == sleeper.pid


def test_convert_refuses_a_native_file(state_dir: Path) -> None:
    result = run_chaos("convert", "experiments/quickstart.yaml")
    assert result.returncode == 2
    assert "not a Chaos Toolkit experiment" in result.stderr


def test_a_directory_includes_chaostoolkit_json_and_says_what_it_skips(
        tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "a-experiment.json").write_text((FIXTURES / "tolerances.json").read_text())
    (tmp_path / "b-native.yaml").write_text(Path("experiments/quickstart.yaml").read_text())
    (tmp_path / "package.json").write_text('{"name": "web", "version": "1.0.0"}')
    (tmp_path / "journal.json").write_text(json.dumps(
        {"chaoslib-version": "1.44.0", "experiment": {"title": "t"}, "status": "completed",
         "run": [], "rollbacks": []}))  # what Chaos Toolkit's `chaos run` leaves behind
    result = run_chaos("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'a-experiment.json'}: ok (Chaos Toolkit experiment" in result.stdout
    assert f"{tmp_path / 'b-native.yaml'}: ok" in result.stdout
    assert f"note: {tmp_path / 'package.json'}: skipped, not a Chaos Toolkit experiment" \
        in result.stderr
    assert f"note: {tmp_path / 'journal.json'}: skipped, a Chaos Toolkit journal" \
        in result.stderr
    # named on its own, a journal is refused with what to do instead
    named = run_chaos("validate", str(tmp_path / "journal.json"))
    assert named.returncode == 2
    assert "a Chaos Toolkit journal (a run's record), not an experiment" in named.stderr


def test_convert_a_kubernetes_experiment_with_environment_configuration(
        tmp_path: Path, state_dir: Path) -> None:
    """chaostoolkit-kubernetes need not be installed; values Chaos Toolkit reads from the
    environment keep their variable's name; a fault the native loader refuses (a signal ours
    do not know) is left out and listed, the rest still converts."""
    out = tmp_path / "native.yaml"
    source = FIXTURES / "k8s-to-convert.json"
    result = run_chaos("convert", str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(out.read_text())
    probes = {p["name"]: p for p in doc["hypothesis"]["probes"]}
    probe = probes["front-page-must-respond"]["http"]
    assert probe["url"] == "${FRONT_URL}/"
    assert probe["headers"] == {"Authorization": "Bearer ${FRONT_TOKEN}"}
    assert probes["at-least-two-backend-pods"]["pods"] == {
        "namespace": "${ns}", "labels": {"app": "backend"}, "min_ready": 2}
    assert probes["cache-healthy"]["deployment"] == {"namespace": "${ns}", "name": "cache"}
    assert probes["front-partly-up"]["deployment"] == {  # chaosk8s's default namespace
        "namespace": "default", "name": "front", "min_available": 1}
    assert doc["hypothesis"]["checks"] == [f"{name} >= 100%" for name in probes]
    assert "ours count Ready pods" in result.stderr
    assert doc["vars"] == {"ns": "shop"}
    assert [(f["type"], f.get("start"), f.get("duration")) for f in doc["faults"]] == [
        ("pod.delete", None, None), ("workload.scale_down", "10s", "60s"),
        ("node.cordon", "10s", "60s"), ("process.suspend", "30s", "60s")]
    assert doc["faults"][0]["target"] == {
        "pods": {"namespace": "${ns}", "labels": {"app": "backend", "tier": "api"}},
        "count": 1}
    skipped = re.findall(rf"^{re.escape(str(source))}:\d+:\d+: (\S+) \((.+?)\): not converted: "
                         r"(.*)$", result.stderr, re.MULTILINE)
    assert [(path, name) for path, name, _ in skipped] == [
        ("steady-state-hypothesis.probes[0]", "all-backend-pods-running"),
        ("steady-state-hypothesis.probes[5]", "pod-logs-say-ok"),
        ("method[4]", "odd-signal"), ("method[5]", "read-backend-logs"),
        ("rollbacks[0]", "scale-cache-back"), ("rollbacks[1]", "uncordon")]
    assert "min_ready: N" in skipped[0][2] and "read_pod_logs has no native probe" in skipped[1][2]
    assert "with.signal" in skipped[2][2] and "BOGUS" in skipped[2][2]
    assert "export FRONT_URL, or pass --var FRONT_URL=VALUE" in result.stderr
    assert "Traceback" not in result.stderr
    checked = run_chaos("validate", str(out), "--var", "FRONT_URL=http://127.0.0.1:1",
                        "--var", "FRONT_TOKEN=t")
    assert checked.returncode == 0, checked.stderr


def test_bad_arguments_to_our_actions_are_refused_before_anything_runs(
        tmp_path: Path, state_dir: Path) -> None:
    """A chaos.ctk.actions call with literal arguments is checked as the call will check them:
    located, exit 2, nothing run; arguments substituted at run time (${...}) are left alone."""
    path = str(FIXTURES / "bad-fault-arguments.yaml")
    result = run_chaos("validate", path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    located = re.findall(rf"^  {re.escape(path)}:(\d+):\d+: (\S+): (.*)$", result.stderr,
                         re.MULTILINE)
    assert [(int(line), field) for line, field, _ in located] == [
        (16, "method[1].provider.arguments.duration"),
        (24, "method[2].provider.arguments.fault_type"),
        (32, "method[3].provider.arguments.signal")], result.stderr
    assert "30 parsecs" in located[0][2] and "nope.fault" in located[1][2]
    assert "BOGUS" in located[2][2]
    workdir = tmp_path / "work"
    ran = run_chaos("run", path, "--runs-dir", str(tmp_path / "r"), "--var",
                    f"workdir={workdir}")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "nothing was run" in ran.stderr
    assert not workdir.exists() and not (state_dir / "ledger").exists()


def test_kubernetes_probe_counts_from_configuration_and_waits_convert_faithfully(
        tmp_path: Path, state_dir: Path) -> None:
    """A count from configuration (`${backends}`) stays a variable instead of crashing the
    converter, and deployment_fully_available's wait (Chaos Toolkit's `timeout`) is named."""
    source = tmp_path / "k8s.json"
    source.write_text(json.dumps({
        "title": "backends survive", "description": "d",
        "configuration": {"backends": 3},
        "steady-state-hypothesis": {"title": "up", "probes": [
            {"type": "probe", "name": "enough-backends", "tolerance": True, "provider": {
                "type": "python", "module": "chaosk8s.pod.probes", "func": "count_min_pods",
                "arguments": {"label_selector": "app=backend", "min_count": "${backends}"}}},
            {"type": "probe", "name": "front-up", "tolerance": True, "provider": {
                "type": "python", "module": "chaosk8s.deployment.probes",
                "func": "deployment_fully_available",
                "arguments": {"name": "front", "timeout": 60}}}]},
        "method": []}))
    out = tmp_path / "native.yaml"
    result = run_chaos("convert", str(source), "-o", str(out))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["vars"] == {"backends": 3}
    assert doc["hypothesis"]["probes"][0]["pods"]["min_ready"] == "${backends}"
    assert "waits up to 60s" in result.stderr and "recover_within: 60s" in result.stderr
    assert run_chaos("validate", str(out)).returncode == 0


def test_terminate_pods_with_grace_period_zero_stays_a_force_delete_and_says_so(
        tmp_path: Path, state_dir: Path) -> None:
    """chaosk8s sends grace_period=0 as it is (a force delete); ours sends 0 as 1 s unless
    `force: true`. The conversion keeps Chaos Toolkit's meaning and names it; other grace periods
    convert as they are."""
    def terminate(name: str, grace: int) -> dict[str, object]:
        return {"type": "action", "name": name, "provider": {
            "type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods",
            "arguments": {"label_selector": "app=web", "ns": "shop", "grace_period": grace}}}

    source = tmp_path / "k8s.json"
    source.write_text(json.dumps({"title": "t", "description": "d",
                                  "method": [terminate("hard", 0), terminate("soft", 5)]}))
    out = tmp_path / "native.yaml"
    result = run_chaos("convert", str(source), "-o", str(out))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    withs = {f["name"]: f.get("with") for f in yaml.safe_load(out.read_text())["faults"]}
    assert withs == {"hard": {"grace_period": "0s", "force": True},
                     "soft": {"grace_period": "5s"}}
    assert "grace_period=0: a force delete" in result.stderr
    assert run_chaos("validate", str(out)).returncode == 0


def test_pauses_from_configuration_count_and_unknown_ones_are_named(
        tmp_path: Path, state_dir: Path) -> None:
    """`pauses: {after: "${wait}"}` is read from a literal configuration value; one from the
    environment cannot be known, counts as 0 and is named (later faults would start early)."""
    def kill(name: str, pause: object) -> dict[str, object]:
        return {"type": "action", "name": name, "pauses": {"after": pause}, "provider": {
            "type": "process", "path": "pkill", "arguments": f"-f {name}-process"}}

    source = tmp_path / "paused.json"
    source.write_text(json.dumps({
        "title": "t", "description": "d",
        "configuration": {"wait": 5, "later": {"type": "env", "key": "LATER_WAIT"}},
        "method": [kill("first", "${wait}"), kill("second", "${later}"), kill("third", -2),
                   kill("fourth", 1)]}))
    out = tmp_path / "native.yaml"
    result = run_chaos("convert", str(source), "-o", str(out))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    starts = {f["name"]: f.get("start") for f in yaml.safe_load(out.read_text())["faults"]}
    assert starts == {"first": None, "second": "5s", "third": "5s", "fourth": "5s"}
    assert "method[1].pauses.after is '${later}'" in result.stderr


def test_json_indented_with_tabs_is_json(tmp_path: Path, state_dir: Path) -> None:
    """`json.dump(indent="\\t")` and many editors indent JSON with tabs, which JSON allows and
    Chaos Toolkit reads; YAML (our parser) forbids them. Errors in a .json file say JSON."""
    document = json.loads((FIXTURES / "tolerances.json").read_text())
    tabbed = tmp_path / "tabbed.json"
    tabbed.write_text(json.dumps(document, indent="\t"))
    result = run_chaos("validate", str(tabbed))
    assert result.returncode == 0, result.stderr
    assert ": ok (Chaos Toolkit experiment" in result.stdout
    lines = tabbed.read_text().splitlines()
    broken_at = next(i for i, line in enumerate(lines) if line.startswith('\t"description"'))
    lines[broken_at] = lines[broken_at].rstrip(",")  # a missing comma, after tabs
    broken = tmp_path / "broken.json"
    broken.write_text("\n".join(lines))
    result = run_chaos("validate", str(broken))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{broken}:{broken_at + 2}:2: invalid JSON: " in result.stderr, result.stderr
    assert "YAML" not in result.stderr and "indent with spaces" not in result.stderr, result.stderr
