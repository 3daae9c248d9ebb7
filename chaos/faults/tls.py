"""TLS faults: prove that clients refuse bad certificates and survive slow or broken handshakes.

They run on the fault proxy in front of a TLS upstream (`protocol: tcp`, the default: the proxy
relays TLS untouched until a fault reaches a new connection). `tls.certificate` makes the proxy
terminate TLS itself with a certificate of the fault's choosing, made on the fly; give the
`ca_cert`/`ca_key` of a CA the clients trust and they see exactly that fault (an expired
certificate, not an unknown CA). Connections already open keep their handshake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaos.faults.registry import FaultRegistry, FaultType
from chaos.model.experiment import Target
from chaos.model.schema import Bool, Duration, Field, Obj, Str

CERTIFICATES = ("expired", "not_yet_valid", "wrong_host", "self_signed", "untrusted_ca",
                "weak_key")


def tls_check(target: Target, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if target.kind == "proxy" and target.selector.get("protocol") == "http":
        problems.append(("target.proxy.protocol", "TLS faults act on the TLS connection itself: "
                         "use a proxy with protocol: tcp (or leave it out) in front of the TLS "
                         "upstream"))
    if (params.get("ca_cert") is None) != (params.get("ca_key") is None):
        problems.append(("with.ca_key" if params.get("ca_cert") else "with.ca_cert",
                         "give both ca_cert and ca_key (the CA that signs the certificate), "
                         "or neither"))
    if params.get("certificate") in ("self_signed", "untrusted_ca") and params.get("ca_cert"):
        problems.append(("with.ca_cert", f"a {params['certificate']} certificate is not signed "
                         "by your CA: remove ca_cert and ca_key"))
    return problems


CERTIFICATE = FaultType(
    name="tls.certificate",
    summary="terminate TLS at the proxy with a bad certificate (expired, wrong host, "
            "untrusted...), then forward to the upstream",
    params=Obj({
        "certificate": Field(Str("what is wrong with it", choices=CERTIFICATES), required=True),
        "host": Str("the name (DNS or IP) the certificate is for; wrong_host uses another "
                    "(default: the proxy's listen host)", min_length=1),
        "ca_cert": Str("PEM file of a CA the clients trust, to sign the certificate so that "
                       "clients see only the fault asked for (default: a CA made on the spot)",
                       min_length=1),
        "ca_key": Str("PEM file of that CA's private key (unencrypted)", min_length=1),
        "upstream_tls": Bool("forward to the upstream over TLS (false: plain TCP)", True),
    }),
    target_kinds=("proxy",),
    check=tls_check,
)
HANDSHAKE_DELAY = FaultType(
    name="tls.handshake_delay",
    summary="hold new connections' TLS handshake (the ClientHello) for a while",
    params=Obj({"delay": Field(Duration("how long the handshake is held", max=3600),
                               required=True)}),
    target_kinds=("proxy",),
    check=tls_check,
)
RESET_HANDSHAKE = FaultType(
    name="tls.reset_handshake",
    summary="reset new connections (TCP RST) when their TLS handshake starts",
    params=Obj({}),
    target_kinds=("proxy",),
    check=tls_check,
)

FAULTS = (CERTIFICATE, HANDSHAKE_DELAY, RESET_HANDSHAKE)


def register(registry: FaultRegistry) -> None:
    for fault in FAULTS:
        registry.add(fault)
