"""`chaos inject` builds its target flags from the target kinds' schemas (`flag=` on a selector
field): a new target kind brings its flags, and two kinds cannot claim one flag."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chaos.cli import cli
from chaos.plugin import Field, FaultRegistry, FaultType, Obj, Str, new_fault_registry


def with_vms() -> FaultRegistry:
    faults = new_fault_registry()
    faults.add_target_kind("vm", Obj({
        "name": Field(Str("the VM's name"), flag="vm", help="hypervisor: a VM by name"),
        "pool": Str("resource pool"),  # no flag: files only
    }))
    faults.add(FaultType("vm.pause", "pause a virtual machine", Obj({}), ("vm",)))
    return faults


def test_a_new_target_kind_brings_its_flags_to_chaos_inject() -> None:
    result = CliRunner().invoke(cli, ["inject", "vm.pause", "--help"],
                                obj={"faults": with_vms()})
    assert result.exit_code == 0, result.output
    assert "--vm TEXT" in result.output and "hypervisor: a VM by name" in result.output
    assert "--pool" not in result.output and "--pid" not in result.output


def test_a_missing_target_names_the_kinds_flags() -> None:
    result = CliRunner().invoke(cli, ["inject", "vm.pause", "--for", "1s"],
                                obj={"faults": with_vms()})
    assert result.exit_code == 2
    assert "say what to hit: --vm" in result.output


def test_the_built_in_flags_set_the_fields_they_always_set() -> None:
    flags = new_fault_registry().target_flags
    assert (flags["pid"].kind, flags["pid"].field, flags["pid"].type) == ("process", "pid", int)
    assert (flags["netns"].kind, flags["netns"].field) == ("netns", "name")
    assert (flags["traffic"].kind, flags["traffic"].field) == ("interface", "direction")
    assert (flags["stream"].kind, flags["stream"].field) == ("proxy", "direction")
    assert flags["process"].help == "process name (as in ps) or executable basename"


@pytest.mark.parametrize(("flag", "message"), [
    ("pid", "flag --pid already sets process.pid"),
    ("Bad Flag", "must be a lowercase word"),
])
def test_a_flag_is_refused_when_its_kind_registers(flag: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        new_fault_registry().add_target_kind("vm", Obj({"id": Field(Str("id"), flag=flag)}))
