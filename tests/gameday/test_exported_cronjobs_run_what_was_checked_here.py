"""`chaos gameday export --kubernetes` must ship a CronJob that runs what the export checked:
the `--var` values it was validated with, and the files laid out where the game day's paths (as
written) point in the pod - or refuse, exit 2, when that is impossible."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import yaml

from tests.conftest import ROOT, run_chaos

SCHEDULE = 'schedule: {cron: "0 3 * * *", timezone: UTC}\n'


def _export(gameday: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    result = run_chaos("gameday", "export", str(gameday), "--kubernetes", *args, timeout=60)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def test_vars_given_to_the_export_are_passed_to_the_cronjob(tmp_path: Path) -> None:
    (tmp_path / "quickstart.yaml").write_text((ROOT / "experiments/quickstart.yaml").read_text())
    gameday = tmp_path / "day.yaml"
    gameday.write_text("title: Vars\n" + SCHEDULE + "experiments: [quickstart.yaml]\n")
    docs = _export(gameday, "--var", "port=18999")
    (container,) = docs[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--var") + 1] == "port=18999"


def test_files_land_where_their_paths_as_written_point(tmp_path: Path) -> None:
    """An experiment reached through a symlinked directory lands under the link's name."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared/quickstart.yaml").write_text(
        (ROOT / "experiments/quickstart.yaml").read_text())
    (tmp_path / "days").mkdir()
    (tmp_path / "days/exps").symlink_to("../shared")
    gameday = tmp_path / "days/day.yaml"
    gameday.write_text("title: Links\n" + SCHEDULE + "experiments: [exps/quickstart.yaml]\n")
    docs = _export(gameday)
    configmap, cronjob = docs[1], docs[-1]
    (volume,) = [v for v in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
                 if "configMap" in v]
    pod_files = tmp_path / "pod"
    for item in volume["configMap"]["items"]:  # what the kubelet does with them
        target = pod_files / PurePosixPath(item["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]])
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    in_pod = PurePosixPath(container["args"][2]).relative_to("/etc/chaos/files")
    result = run_chaos("validate", str(pod_files / in_pod), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_absolute_experiment_path_is_refused_with_its_location(tmp_path: Path) -> None:
    gameday = tmp_path / "day.yaml"
    gameday.write_text("title: Absolute\n" + SCHEDULE + "experiments:\n"
                       f"  - {ROOT / 'experiments/quickstart.yaml'}\n")
    result = run_chaos("gameday", "export", str(gameday), "--kubernetes", timeout=60)
    assert result.returncode == 2, result.stdout
    assert f"{gameday}:4:5: experiment " in result.stderr
    assert "relative to the game-day file" in result.stderr and "Traceback" not in result.stderr
    assert not result.stdout


def test_a_name_kubernetes_would_reject_is_refused(tmp_path: Path) -> None:
    gameday = tmp_path / "day.yaml"
    gameday.write_text("title: Named\n" + SCHEDULE + "experiments: [quickstart.yaml]\n")
    (tmp_path / "quickstart.yaml").write_text((ROOT / "experiments/quickstart.yaml").read_text())
    result = run_chaos("gameday", "export", str(gameday), "--kubernetes", "--name", "Weekly_Day",
                       timeout=60)
    assert result.returncode == 2 and "--name 'Weekly_Day'" in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout
