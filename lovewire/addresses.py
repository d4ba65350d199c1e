"""The client's address, through trusted reverse proxies, as the key of per-address limits.

Addresses are read with `ipaddress`, so one address has one spelling (`::ffff:1.2.3.4` is
`1.2.3.4`), and an IPv6 client is keyed by its /64: one subscriber usually holds a whole
/64, and must not get a fresh budget for every address in it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["IPV6_PREFIX", "client_address", "is_trusted"]

#: The prefix an IPv6 client is counted by, for every per-address limit.
IPV6_PREFIX = 64

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(text: str) -> _Address | None:
    """The address written in text (IPv4-mapped IPv6 as IPv4), or None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _key(addr: _Address) -> str:
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, IPV6_PREFIX), strict=False))
    return str(addr)


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[_Network, ...]:
    networks: list[_Network] = []
    for entry in trusted:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            continue
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.IPv4Network(mapped)
        networks.append(network)
    return tuple(networks)


def _trusted(addr: _Address, networks: tuple[_Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def is_trusted(peer: str, trusted: tuple[str, ...]) -> bool:
    """True if the peer is one of the trusted proxies."""
    addr = _parse(peer)
    return addr is not None and _trusted(addr, _networks(trusted))


def client_address(
    peer: str | None, forwarded_for: Iterable[str] | str | None, trusted: tuple[str, ...]
) -> str:
    """The key of the client: the peer, or through trusted proxies, the last untrusted hop.

    Several X-Forwarded-For headers are one list, in order (RFC 7230, 3.2.2). A hop that
    is not an IP address ends the walk: the last address read is the client.
    """
    addr = _parse(peer) if peer else None
    if addr is None:
        return peer or "unknown"
    if isinstance(forwarded_for, str):
        forwarded_for = [forwarded_for]
    networks = _networks(trusted)
    if forwarded_for and _trusted(addr, networks):
        hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            hop_addr = _parse(hop)
            if hop_addr is None:
                break
            addr = hop_addr
            if not _trusted(addr, networks):
                break
    return _key(addr)
