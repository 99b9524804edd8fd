"""The private-network rule on addresses (issue 12): an IPv6 address that carries an
IPv4 one is judged by the IPv4 address, and cloud metadata is refused for everyone.

The embeddings are built here from their RFCs, independently of the decoder.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from scrapers._fetch import CLOUD_METADATA, address_refusal

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
TEREDO_SERVER = int(V4("65.54.227.120"))  # a public Teredo server


def _nat64_local(prefix: int) -> Callable[[int], V6]:
    """RFC 6052, 2.2: the IPv4 bits split around the zero u octet (bits 64-71)."""

    def embed(v4: int) -> V6:
        base = 0x0064FF9B0001 << 80
        if prefix == 96:
            return V6(base | v4)
        before_u = 64 - prefix
        after_u = 32 - before_u
        high, low = v4 >> after_u, v4 & ((1 << after_u) - 1)
        return V6(base | (high << 64) | (low << (56 - after_u)))

    return embed


# Every form an IPv4 address can hide in; each takes the IPv4 address as an integer.
EXACT_FORMS: dict[str, Callable[[int], V6]] = {
    "IPv4-mapped ::ffff:a.b.c.d": lambda v4: V6((0xFFFF << 32) | v4),
    "IPv4-translated ::ffff:0:a.b.c.d": lambda v4: V6((0xFFFF << 48) | v4),
    "IPv4-compatible ::a.b.c.d": lambda v4: V6(v4),
    "NAT64 64:ff9b::/96": lambda v4: V6((0x0064FF9B << 96) | v4),
    # A local NAT64 /96 whose u octet is set, so it can only be read as a /96.
    "NAT64 64:ff9b:1:0:ff00::/96": lambda v4: V6((0x0064FF9B0001 << 80) | (0xFF00 << 48) | v4),
    "6to4 2002::/16": lambda v4: V6((0x2002 << 112) | (v4 << 80) | 0x1),
    # Teredo: server, flags, obfuscated port, and the client with its bits inverted.
    "Teredo 2001::/32": lambda v4: V6(
        (0x20010000 << 96)
        | (TEREDO_SERVER << 64)
        | (0x8000 << 48)
        | (0x1234 << 32)
        | (~v4 & 0xFFFFFFFF)
    ),
}
FORMS = {
    **EXACT_FORMS,
    **{f"NAT64 64:ff9b:1::/48 as a /{n}": _nat64_local(n) for n in (48, 56, 64, 96)},
}

_NOT_PUBLIC = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
not_public_v4 = st.sampled_from(_NOT_PUBLIC).flatmap(
    lambda net: st.integers(int(net.network_address), int(net.broadcast_address))
)
any_v4 = st.integers(0, 2**32 - 1)
metadata_v4 = st.sampled_from([int(ip) for ip in CLOUD_METADATA if ip.version == 4])


@given(not_public_v4, st.sampled_from(sorted(FORMS)))
def test_a_private_ipv4_address_is_refused_in_every_embedding(v4: int, form: str) -> None:
    assert address_refusal(str(V4(v4))) is not None
    assert address_refusal(str(FORMS[form](v4))) is not None


@given(any_v4, st.sampled_from(sorted(EXACT_FORMS)))
def test_an_embedded_ipv4_address_is_judged_as_that_address(v4: int, form: str) -> None:
    refused = address_refusal(str(V4(v4))) is not None
    assert (address_refusal(str(EXACT_FORMS[form](v4))) is not None) == refused


@given(metadata_v4, st.sampled_from(sorted(FORMS)))
def test_cloud_metadata_is_refused_even_where_private_networks_are_allowed(
    v4: int, form: str
) -> None:
    for address in (str(V4(v4)), str(FORMS[form](v4))):
        refusal = address_refusal(address, private_ok=True)
        assert refusal is not None and "cloud metadata" in refusal


def test_the_red_team_addresses_are_refused() -> None:
    for address in (
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::1",
        "::a9fe:a9fe",
        "::ffff:0:7f00:1",
        "::ffff:169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "169.254.169.254",
    ):
        assert address_refusal(address) is not None, address
    assert "cloud metadata" in (address_refusal("fd00:ec2::254", private_ok=True) or "")
    assert address_refusal("::ffff:0:7f00:1", private_ok=True) is None  # just private


def test_public_addresses_and_allowed_private_ones_pass() -> None:
    assert address_refusal("93.184.215.14") is None
    assert address_refusal("2a04:4e42::313") is None
    assert address_refusal("64:ff9b::5db8:d70e") is None  # NAT64 of 93.184.215.14
    assert address_refusal("10.1.2.3", private_ok=True) is None
    assert address_refusal("fe80::1%eth0", private_ok=True) is None
    assert address_refusal("not an address", private_ok=True) is not None
