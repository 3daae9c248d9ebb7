"""The container target kind without an engine: selectors become the engine's filters, the
rules across target and parameters are refused at their line, the runner's own container is
recognised, and the inject flags build the same document a file would."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chaos.adapters.container.selection import container_ids_in, filters_of
from chaos.cli import cli
from chaos.errors import ExperimentInvalid
from chaos.model.loader import load_text
from chaos.model.source import SourceText
from chaos.runner.load import vocabulary

ID = "2b905a625e3805c2fad04249181315ebd6cca277a850cd535c2ece8ca5c1d581"


def problems(fault: str) -> list[str]:
    text = f"title: t\nfaults:\n  - {fault}\n    duration: 1s\n"
    try:
        load_text(SourceText("t.yaml", text), vocabulary(), {})
    except ExperimentInvalid as exc:
        return [f"{p.path}: {p.message}" for p in exc.problems]
    return []


def test_selectors_become_engine_filters() -> None:
    assert filters_of({"name": "db.1", "id": "2b905a", "label": "app=web", "image": "redis:7",
                       "compose": {"project": "shop", "service": "payments"}}) == {
        "name": ["^/?db\\.1$"], "id": ["2b905a"], "ancestor": ["redis:7"],
        "label": ["app=web", "com.docker.compose.project=shop",
                  "com.docker.compose.service=payments"]}
    assert filters_of({"compose": {"project": "shop"}}) == {
        "label": ["com.docker.compose.project=shop"]}


def test_the_runners_own_container_is_recognised_from_cgroups_and_mounts() -> None:
    assert container_ids_in(f"0::/docker/{ID}\n") == {ID}
    assert container_ids_in(f"0::/machine.slice/libpod-{ID}.scope\n") == {ID}
    mount = f"1 2 0:3 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 x rw"
    assert container_ids_in(mount) == {ID}
    assert container_ids_in("0::/user.slice/session-1.scope\n") == set()
    # a Podman host: every container's shm mount is in the host's own mountinfo
    shm = (f"7 2 0:9 / /var/lib/containers/storage/overlay-containers/{ID}/userdata/shm rw "
           "- tmpfs shm rw")
    assert container_ids_in(shm) == set()
    podman = f"1 2 0:3 /run/containers/storage/x/{ID}/userdata/hostname /etc/hostname rw - x"
    assert container_ids_in(podman) == {ID}


@pytest.mark.parametrize(("fault", "expected"), [
    ("type: container.pause\n    target: {container: {port: 53}}",
     "faults[0].target.container: select containers by name"),
    ("type: container.pause\n    target: {container: {name: db, port: 5432}}",
     "faults[0].target.container.port: port selects traffic for network faults"),
    ("type: resource.cpu\n    target: {container: {name: db, device: eth0}}",
     "faults[0].target.container.device: device selects traffic"),
    ("type: container.kill\n    target: {container: {name: db}}\n    with: {container: x}",
     "faults[0].with.container: names a container inside a pod"),
    ("type: network.partition\n    target: {container: {name: a, peer: {name: b}, "
     "host: 10.0.0.1}}", "faults[0].target.container.host: host and peer both say"),
    ("type: container.pause\n    target: {container: {name: a, peer: {name: b}}}",
     "faults[0].target.container.peer: peer selects traffic"),
    ("type: container.pause\n    target: {container: {id: XYZ}}",
     "faults[0].target.container.id"),
])
def test_container_rules_are_refused_at_their_path(fault: str, expected: str) -> None:
    found = problems(fault)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize("fault", [
    "type: container.kill\n    target: {container: {label: app=worker}, percent: 50%}\n"
    "    with: {signal: KILL}",
    "type: network.latency\n    target: {container: {compose: {project: shop, service: "
    "payments}, port: 5432}, count: 1}\n    with: {delay: 200ms}",
    "type: container.pause\n    target: {container: checkout-db}",
    "type: resource.memory\n    target: {container: {image: redis:7}}\n    with: {amount: 64MiB}",
])
def test_the_issues_examples_validate(fault: str) -> None:
    if "container.kill" in fault:  # instant: no duration
        text = f"title: t\nfaults:\n  - {fault}\n"
        load_text(SourceText("t.yaml", text), vocabulary(), {})
    else:
        assert problems(fault) == []


def test_kill_on_pods_still_refuses_sigkill() -> None:
    text = ("title: t\nfaults:\n  - type: container.kill\n    target: {pods: {labels: {a: b}}}\n"
            "    with: {signal: KILL}\n")
    with pytest.raises(ExperimentInvalid) as exc:
        load_text(SourceText("t.yaml", text), vocabulary(), {})
    assert "SIGKILL cannot reach" in str(exc.value.problems)


@pytest.mark.parametrize(("argv", "expected"), [
    (["container.pause", "--compose", "a/b/c"], "--compose takes PROJECT/SERVICE"),
    (["resource.cpu", "--container", "db", "--pid", "1", "--load", "10%"],
     "give one or the other"),
    (["container.pause"], "say what to hit: --container, --compose, --label, --image"),
])
def test_inject_flags_are_refused_with_exit_2(argv: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["inject", *argv, "--for", "1s"])
    assert result.exit_code == 2, result.output
    assert expected in result.output
