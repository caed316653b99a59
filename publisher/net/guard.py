"""The one outbound fetch guard: URLs from content or a partner reach public addresses only.

An article's cover, a body `<img src>`, a partner's feed and its images are
URLs someone outside the newsroom chose. Fetched naively, they make a worker
talk to Redis on loopback, the cloud metadata service or the office LAN, and
the attempt log turns into a port scanner. So every such fetch goes through
`PublicSession`, which

- refuses userinfo (`user:pw@host`) and any non-http(s) scheme outright,
- refuses hosts written as integers in another spelling (`2130706433`,
  `0x7f.1`, `0177.0.0.1`, `127.1`), which resolvers read as addresses,
- resolves the host once and refuses it unless *every* address it resolves
  to is public (`is_public`), embedded IPv4 included (mapped, compatible,
  6to4, NAT64),
- connects to the address it checked, not to a second lookup of the name
  (`PinnedAdapter`: the pool is keyed by the IP; Host and TLS SNI/certificate
  checks keep the name), so DNS rebinding between check and use is moot,
- follows at most `MAX_REDIRECTS` redirects itself, checking each hop the
  same way and never reading a redirect's body.

`PUBLISHER_FETCH_ALLOW` (hosts and CIDRs, `Allowlist`) is the only way in:
the newsroom's own CDN on a private network, or tests on loopback.

A refusal is a `FetchRefused` whose reason is always the same sentence,
`REFUSED`, whatever the cause, so the attempt log says nothing about which
internal addresses exist. Operator-configured destinations (platform base
URLs, webhooks, notification targets, WebSub hubs) do not come through here.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from publisher.domain.errors import ConfigError, PermanentError

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

REFUSED = "refused: not a public address"
MAX_REDIRECTS = 3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Never public, whatever the running Python's `is_global` says (it changed
#: across 3.11 patch releases): RFC 6890 special-purpose blocks and friends.
_NOT_PUBLIC: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
        "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10",
        "ff00::/8",
    )
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: A host made only of numeric labels that is not a canonical dotted quad.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.I)


class FetchRefused(PermanentError):
    """The URL points at an address content may not reach; retrying cannot help."""

    def __init__(self) -> None:
        super().__init__(REFUSED)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), or None."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True only for a unicast address on the public internet.

    IPv6 forms that carry an IPv4 address are judged by the address they
    carry; IPv4-compatible (`::a.b.c.d`), Teredo and zone-scoped addresses
    are never public here.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public(inner)
    if any(ip in net for net in _NOT_PUBLIC if net.version == ip.version):
        return False
    flags = (
        ip.is_private, ip.is_loopback, ip.is_link_local, ip.is_multicast, ip.is_reserved,
        ip.is_unspecified,
    )  # fmt: skip
    return ip.is_global and not any(flags)


@dataclass(frozen=True)
class Allowlist:
    """The operator's exceptions: exact host names (case-insensitive) and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """`PUBLISHER_FETCH_ALLOW` entries: `cdn.internal`, `10.1.0.0/16`, `127.0.0.1`."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or not re.fullmatch(r"[a-z0-9._-]+", entry):
                raise ConfigError(f"PUBLISHER_FETCH_ALLOW: {raw[:80]!r} is not a host or a CIDR")
            hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    @classmethod
    def of(cls, entries: tuple[str, ...]) -> Allowlist:
        """The parsed allowlist for `Settings.fetch_allow`, parsed once per process."""
        return _parsed(entries)

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_ipv4(ip)) is not None:
            candidates.append(inner)
        return any(
            c in net for c in candidates for net in self.networks if net.version == c.version
        )


@functools.lru_cache(maxsize=8)
def _parsed(entries: tuple[str, ...]) -> Allowlist:
    return Allowlist.parse(entries)


@dataclass(frozen=True)
class Target:
    """A checked URL: the name to send as Host/SNI and the address to connect to."""

    scheme: str
    host: str
    port: int
    address: str


def check_url(url: str, allow: Allowlist, *, resolve: Any = socket.getaddrinfo) -> Target:
    """The address `url` may be fetched from, or `FetchRefused`.

    `resolve` is `socket.getaddrinfo`; it is a parameter so a test can prove a
    refused name is never connected to without touching real DNS.
    """
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:  # a bad port or an unclosed IPv6 bracket
        raise FetchRefused() from None
    if scheme not in ("http", "https") or not host or "@" in parts.netloc:
        raise FetchRefused()
    if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise FetchRefused()
    port = port or (443 if scheme == "https" else 80)
    literal = _literal(host)
    if literal is None and _NUMERIC_HOST.match(host):
        raise FetchRefused()  # an integer, octal or hex spelling of an address
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise FetchRefused() from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if any(str(info[4][0]).count("%") for info in infos):
            raise FetchRefused()
    if not addresses:
        raise FetchRefused()
    if not allow.allows_host(host):
        for ip in addresses:
            if not (is_public(ip) or allow.allows_address(ip)):
                raise FetchRefused()
    return Target(scheme, host, port, str(addresses[0]))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class PinnedAdapter(HTTPAdapter):
    """A transport that checks each request's URL and connects to the checked address.

    The urllib3 pool is keyed by the IP address it connects to, while the
    request keeps the name: `Host` carries it, and for https it is the SNI
    name and the name the certificate must match.
    """

    def __init__(self, allow: Allowlist, *, resolve: Any = socket.getaddrinfo) -> None:
        super().__init__(max_retries=0)
        self.allow = allow
        self.resolve = resolve

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        """The documented seam for pool keys: the checked address, and for https the
        name TLS must present and verify (urllib3 keys pools by both)."""
        target = check_url(str(request.url), self.allow, resolve=self.resolve)
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_params["host"] = target.address
        host_params["port"] = target.port
        if target.scheme == "https":
            tls = cast(dict[str, Any], pool_kwargs)
            tls.update(server_hostname=target.host, assert_hostname=target.host)
        return host_params, pool_kwargs

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        parts = urlsplit(str(request.url))
        request.headers["Host"] = parts.netloc  # userinfo was refused above


class PublicSession(requests.Session):
    """A requests session for URLs from content: guarded, pinned, at most 3 redirects.

    Proxies and `.netrc` from the environment are ignored (a proxy would
    resolve the name again). Redirects are followed here, one checked hop at
    a time, and a redirect's body is never read.
    """

    def __init__(self, allow: Allowlist, *, resolve: Any = socket.getaddrinfo) -> None:
        super().__init__()
        self.trust_env = False
        self.max_redirects = MAX_REDIRECTS
        adapter = PinnedAdapter(allow, resolve=resolve)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs["allow_redirects"] = False
        current = url.decode() if isinstance(url, bytes) else url
        for _ in range(MAX_REDIRECTS + 1):
            response = super().request(method, current, *args, **kwargs)
            location = response.headers.get("Location") if response.is_redirect else None
            if location is None:
                return response
            response.close()
            current = urljoin(response.url, location.encode("latin-1").decode("utf-8", "replace"))
            if urlsplit(current).scheme.lower() not in ("http", "https"):
                raise FetchRefused()  # the adapter checks the rest of the hop
            if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method = "GET"
                kwargs.pop("data", None)
                kwargs.pop("json", None)
        raise PermanentError(f"refused: more than {MAX_REDIRECTS} redirects")
