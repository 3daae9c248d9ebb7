"""Each multi-fault adapter serves exactly the fault types of its recipe table, and every list of
fault names an adapter, the in-pod agent or the pod spec uses is derived from those tables."""

from __future__ import annotations

import argparse
import json

import pytest

from chaos.adapters.container import disk, lifecycle, network, resource as container_resource
from chaos.adapters.kubernetes import ephemeral, ephemeral_spec, inpod_agent
from chaos.adapters.local import kernel, kernel_recipes, process, proxy_adapter, proxy_toxics
from chaos.adapters.local import resource, resource_recipes, service
from chaos.adapters.registry import new_registry
from chaos.faults.registry import FaultRegistry
from chaos.model.experiment import FaultSpec, Target, frozen


@pytest.fixture(scope="module")
def catalogue() -> FaultRegistry:
    return new_registry().faults


def names(catalogue: FaultRegistry, *, kind: str = "", prefix: str = "") -> set[str]:
    return {f.name for f in catalogue
            if (not kind or kind in f.target_kinds) and f.name.startswith(prefix)}


def test_every_kernel_fault_has_one_recipe_and_every_recipe_a_fault(
        catalogue: FaultRegistry) -> None:
    assert set(kernel_recipes.RECIPES) == names(catalogue, kind="interface")
    assert names(catalogue, kind="interface") == names(catalogue, kind="netns")


def test_every_resource_fault_has_one_recipe_and_every_recipe_a_fault(
        catalogue: FaultRegistry) -> None:
    assert set(resource_recipes.RECIPES) == names(catalogue, prefix="resource.")
    assert set(resource_recipes.RECIPES) == names(catalogue, kind="host")


def test_every_process_and_service_fault_has_one_recipe(catalogue: FaultRegistry) -> None:
    assert set(process.RECIPES) == names(catalogue, kind="process") - names(
        catalogue, prefix="resource.")
    assert set(service.RECIPES) == names(catalogue, kind="service") - names(
        catalogue, prefix="time.")


def test_every_container_lifecycle_fault_has_one_recipe(catalogue: FaultRegistry) -> None:
    assert set(lifecycle.RECIPES) == names(catalogue, prefix="container.")


def test_every_proxy_fault_has_one_toxic(catalogue: FaultRegistry) -> None:
    assert set(proxy_toxics.FAULT_KINDS) == names(catalogue, kind="proxy")


def test_adapters_serve_exactly_what_their_recipes_hold() -> None:
    kernel_types = tuple(kernel_recipes.RECIPES)
    assert kernel.InterfaceAdapter.fault_types == kernel_types
    assert kernel.NetnsAdapter.fault_types == kernel_types
    assert network.ContainerNetworkAdapter.fault_types == kernel_types
    assert resource.HostResourceAdapter.fault_types == tuple(resource_recipes.RECIPES)
    in_cgroup = tuple(n for n, r in resource_recipes.RECIPES.items() if r.in_cgroup)
    assert resource.ProcessResourceAdapter.fault_types == in_cgroup
    assert container_resource.ContainerResourceAdapter.fault_types == in_cgroup
    filled = tuple(n for n, r in resource_recipes.RECIPES.items() if r.workers is None)
    assert disk.ContainerDiskAdapter.fault_types == filled
    assert process.ProcessAdapter.fault_types == tuple(process.RECIPES)
    assert service.ServiceAdapter.fault_types == tuple(service.RECIPES)
    assert lifecycle.ContainerLifecycleAdapter.fault_types == tuple(lifecycle.RECIPES)
    assert proxy_adapter.ProxyAdapter.fault_types == tuple(proxy_toxics.FAULT_KINDS)


def test_pod_adapters_serve_the_pod_recipes_by_holder_and_nothing_else() -> None:
    served = {name: holder for holder, cls in ephemeral.BY_HOLDER.items()
              for name in cls.fault_types}
    assert served == {name: r.holder for name, r in ephemeral_spec.RECIPES.items()}
    # what the agent holds with the kernel is what a host holds: every kernel recipe
    for name, recipe in ephemeral_spec.RECIPES.items():
        assert inpod_agent.holder_of(name) == recipe.holder
        assert ephemeral_spec.needs_net_admin(name) == ephemeral.BY_HOLDER[
            recipe.holder].net_admin
    assert {n for n in kernel_recipes.RECIPES if inpod_agent.holder_of(n) == "kernel"} == set(
        kernel_recipes.RECIPES)
    assert inpod_agent.holder_of("process.kill") is None


@pytest.mark.parametrize("fault_type", [*kernel_recipes.RECIPES, "resource.cpu", "http.abort"])
def test_the_agent_builds_the_local_fault_its_holder_names(fault_type: str) -> None:
    args = argparse.Namespace(target=json.dumps({"device": "eth1"}), params="{}", id="abc",
                              name="f", fault=fault_type, deadline=0.0)
    adapter, fault, target = inpod_agent.local_fault(args)
    expected = {"kernel": "local.kernel", "resource": "local.resource", "http": "inpod.http"}
    assert adapter.name == expected[str(inpod_agent.holder_of(fault_type))]
    assert fault.type == fault_type and target.kind == fault.target.kind


def test_every_declared_target_kind_is_served_by_exactly_one_adapter() -> None:
    registry = new_registry()
    for fault in registry.faults:
        kinds = [a.target_kind for a in registry.adapters_for(fault.name)]
        assert sorted(kinds) == sorted(fault.target_kinds), fault.name


def kernel_fault(fault_type: str, params: dict[str, object]) -> FaultSpec:
    return FaultSpec(index=0, name="f", type=fault_type, params=frozen(params), start=0.0,
                     duration=1.0, target=Target("interface", frozen(SELECTOR)))


SELECTOR = {"device": "eth0", "port": 8080, "protocol": "tcp", "direction": "egress"}


def test_dns_is_port_53_of_any_protocol_for_nft_and_iptables_alike() -> None:
    dns = kernel_fault("network.dns", {})
    assert kernel_recipes.nft_matches(dns, SELECTOR, "output") == [
        'oifname "eth0" meta l4proto { tcp, udp } th dport 53',
        'oifname "eth0" meta l4proto { tcp, udp } th sport 53']
    rules = kernel_recipes.ipt_rules(dns, SELECTOR, "OUTPUT")
    assert [(r[r.index("-p") + 1], r[r.index("-p") + 3]) for r in rules] == [
        ("tcp", "53"), ("tcp", "53"), ("udp", "53"), ("udp", "53")]
    partition = kernel_fault("network.partition", {})
    assert kernel_recipes.nft_matches(partition, SELECTOR, "output")[0].endswith("dport 8080")


def test_only_a_sampled_drop_carries_a_share_and_correlated_loss_shapes() -> None:
    loss = kernel_fault("network.loss", {"percent": 0.25})
    assert "numgen random mod 10000 < 2500 counter drop" in kernel_recipes.nft_table(
        "chaos_t", loss, SELECTOR)
    assert "0.2500" in kernel_recipes.ipt_rules(loss, SELECTOR, "OUTPUT")[0]
    partition = kernel_fault("network.partition", {})
    assert "numgen" not in kernel_recipes.nft_table("chaos_t", partition, SELECTOR)
    assert "statistic" not in kernel_recipes.ipt_rules(partition, SELECTOR, "OUTPUT")[0]
    recipes = kernel_recipes.RECIPES
    assert not recipes["network.loss"].shapes({"percent": 0.25})
    assert recipes["network.loss"].shapes({"percent": 0.25, "correlation": 0.5})
    assert recipes["network.loss"].uses_netem({"percent": 0.25, "correlation": 0.5})
    assert recipes["network.bandwidth"].shapes({}) and not recipes["network.bandwidth"].uses_netem(
        {"rate": 1000})
    assert recipes["network.latency"].qdisc_args({"delay": 0.1, "jitter": 0.01}) == [
        "netem", "delay", "100000us", "10000us"]
