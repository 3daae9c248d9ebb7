"""Target kinds: how a fault says what it hits. The kind picks the adapter."""

from __future__ import annotations

from chaos.model.schema import Int, Obj, Str, scalar_as

PROCESS = Obj({
    "name": Str("process name (as in ps -o comm) or executable basename"),
    "cmdline": Str("regular expression searched in the full command line"),
    "pid": Int("process id", min=1),
    "pidfile": Str("file holding the process id"),
    "user": Str("owner user name"),
}, "local processes; all given fields must match")


SERVICE = Obj({"name": Str("a service declared under services", min_length=1)},
              "a service declared in this experiment: `target: {service: NAME}`",
              shorthand=scalar_as("name"))
