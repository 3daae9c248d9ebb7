"""Target kinds: how a fault says what it hits. The kind picks the adapter."""

from __future__ import annotations

import yaml

from chaos.model.schema import Int, Obj, Str

PROCESS = Obj({
    "name": Str("process name (as in ps -o comm) or executable basename"),
    "cmdline": Str("regular expression searched in the full command line"),
    "pid": Int("process id", min=1),
    "pidfile": Str("file holding the process id"),
    "user": Str("owner user name"),
}, "local processes; all given fields must match")


def _service_name(node: yaml.Node) -> yaml.Node | None:
    if isinstance(node, yaml.ScalarNode):
        key = yaml.ScalarNode("tag:yaml.org,2002:str", "name", node.start_mark, node.end_mark)
        return yaml.MappingNode("tag:yaml.org,2002:map", [(key, node)], node.start_mark,
                                node.end_mark)
    return None


SERVICE = Obj({"name": Str("a service declared under services", min_length=1)},
              "a service declared in this experiment: `target: {service: NAME}`",
              shorthand=_service_name)
