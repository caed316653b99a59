"""The outbound fetch guard: every address form of the issue, and real loopback servers
that count connections, so a refusal is proven to happen before anything connects."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from channels.base import ChannelContext
from channels.images import PNG, fetch_image
from publisher.config.settings import Settings
from publisher.domain.errors import ConfigError, PermanentError
from publisher.net.guard import REFUSED, Allowlist, FetchRefused, PublicSession, check_url

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
IMAGES = frozenset({PNG})

# Each of these must be refused without an allowlist (the issue's list, every spelling).
REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://127.0.0.1:6379/",
    "http://127.0.0.1:5432/",
    "http://127.0.0.1./",
    "http://2130706433/",  # decimal integer
    "http://0x7f000001/",  # hex integer
    "http://0177.0.0.1/",  # octal label
    "http://0x7f.1/",
    "http://127.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://[::1]:6379/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of the metadata service
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::1]/",  # local-use NAT64
    "http://[2001::1]/",  # Teredo
    "http://[fe80::1%25eth0]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://100.64.0.1/",  # CGNAT
    "http://100.127.255.254/",
    "http://198.18.0.1/",
    "http://192.0.0.1/",
    "http://192.0.2.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fd00::1]/",
    "http://[fc00::1]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    "http://[100::1]/",
    "http://localhost/",
    "http://user:pw@127.0.0.1/",
    "http://user:pw@example.org/",  # userinfo is refused outright, even for a public host
    "http://user@8.8.8.8/",
    "http://8.8.8.8\t/",
    "ftp://8.8.8.8/",
    "file:///etc/passwd",
    "http://[::1/",
]

# Public: accepted by the check (nothing is fetched from them in this suite).
PUBLIC_URLS = [
    ("http://8.8.8.8/", "8.8.8.8"),
    ("https://1.1.1.1:8443/x", "1.1.1.1"),
    ("http://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
    ("http://[::ffff:8.8.8.8]/", "::ffff:808:808"),
    ("http://[2002:808:808::1]/", "2002:808:808::1"),
    ("http://[64:ff9b::808:808]/", "64:ff9b::808:808"),
    ("http://100.128.0.1/", "100.128.0.1"),  # just past CGNAT
    ("http://172.32.0.1/", "172.32.0.1"),  # just past 172.16/12
]


def no_dns(host: str, port: int, **_: Any) -> list[Any]:
    raise AssertionError(f"{host} should not need a DNS lookup")


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_non_public_addresses_are_refused(url: str) -> None:
    resolve = socket.getaddrinfo if "localhost" in url else no_dns
    with pytest.raises(FetchRefused) as caught:
        check_url(url, Allowlist(), resolve=resolve)
    assert caught.value.reason == REFUSED
    assert isinstance(caught.value, PermanentError)  # retrying cannot help


@pytest.mark.parametrize(("url", "address"), PUBLIC_URLS)
def test_public_addresses_pass(url: str, address: str) -> None:
    assert check_url(url, Allowlist(), resolve=no_dns).address == address


def resolver(answers: dict[str, list[str]], calls: list[str]) -> Callable[..., list[Any]]:
    """A stand-in for DNS: `host` resolves to `answers[host]`, each call recorded."""

    def resolve(host: str, port: int, **_: Any) -> list[Any]:
        calls.append(host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    return resolve


def test_a_name_is_refused_if_any_of_its_addresses_is_not_public() -> None:
    resolve = resolver({"rebind.example": ["8.8.8.8", "10.0.0.1"]}, [])
    with pytest.raises(FetchRefused):
        check_url("http://rebind.example/", Allowlist(), resolve=resolve)


def test_allowlist_hosts_and_networks() -> None:
    allow = Allowlist.parse(["cdn.internal", "10.1.0.0/16", "127.0.0.1", "[::1]"])
    resolve = resolver({"cdn.internal": ["10.9.9.9"], "other.internal": ["10.9.9.9"]}, [])
    assert check_url("http://cdn.internal/a.png", allow, resolve=resolve).address == "10.9.9.9"
    assert check_url("http://10.1.2.3/", allow, resolve=no_dns).address == "10.1.2.3"
    assert check_url("http://[::ffff:127.0.0.1]/", allow, resolve=no_dns)
    assert check_url("http://[::1]/", allow, resolve=no_dns)
    for url in ("http://other.internal/", "http://10.2.0.1/", "http://127.0.0.2/"):
        with pytest.raises(FetchRefused):
            check_url(url, allow, resolve=resolve)
    with pytest.raises(FetchRefused):  # the allowlist never admits userinfo
        check_url("http://u:p@cdn.internal/", allow, resolve=resolve)


def test_a_bad_allowlist_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PUBLISHER_FETCH_ALLOW"):
        Allowlist.parse(["http://cdn/"])


def test_settings_read_the_allowlist(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(PUBLISHER_FETCH_ALLOW="cdn.internal, 10.0.0.0/8 127.0.0.1")
    assert settings.fetch_allow == ("cdn.internal", "10.0.0.0/8", "127.0.0.1")
    assert Allowlist.of(settings.fetch_allow).allows_host("CDN.internal")


# ---- real servers on loopback that count connections --------------------------------------


@dataclass
class Counting:
    """An HTTP server on one loopback address; counts connections and records requests."""

    host: str
    connections: int = 0
    hosts: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"


def counting_server(host: str, tls: Any = None) -> Iterator[Counting]:
    """Serves on `host`; with `tls` (a trustme server certificate) it speaks https."""
    state = Counting(host)

    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            state.connections += 1
            super().setup()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            state.hosts.append(self.headers.get("Host", ""))
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/to":
                self.send_response(302)
                self.send_header("Location", query["url"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif parts.path.startswith("/hops/"):
                left = int(parts.path.rsplit("/", 1)[1])
                self.send_response(302)
                self.send_header("Location", "/img.png" if left <= 1 else f"/hops/{left - 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PNG_BYTES)))
                self.end_headers()
                self.wfile.write(PNG_BYTES)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    state.server = Server((host, 0), Handler)
    if tls is not None:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.configure_cert(context)
        state.server.socket = context.wrap_socket(state.server.socket, server_side=True)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.server.shutdown()
        state.server.server_close()


@pytest.fixture
def inside() -> Iterator[Counting]:
    """Stands for an internal service: never allowlisted in these tests."""
    yield from counting_server("127.0.0.2")


@pytest.fixture
def cdn() -> Iterator[Counting]:
    """Stands for the newsroom's CDN: the allowlist admits exactly this address."""
    yield from counting_server("127.0.0.1")


def context_for(make_settings: Callable[..., Settings], allow: str = "") -> ChannelContext:
    return ChannelContext(settings=make_settings(PUBLISHER_FETCH_ALLOW=allow))


def fetch(url: str, context: ChannelContext) -> Any:
    return fetch_image(url, context, max_bytes=10_000, allowed_types=IMAGES, timeout=2.0)


def test_fetch_image_refuses_loopback_in_every_spelling_before_connecting(
    inside: Counting, make_settings: Callable[..., Settings]
) -> None:
    context = context_for(make_settings)
    port = inside.port
    urls = [
        inside.url("/img.png"),
        f"http://2130706434:{port}/img.png",  # 127.0.0.2 as one decimal integer
        f"http://0x7f000002:{port}/img.png",
        f"http://0177.0.0.2:{port}/img.png",
        f"http://127.2:{port}/img.png",
        f"http://[::ffff:127.0.0.2]:{port}/img.png",
        f"http://user:pw@127.0.0.2:{port}/img.png",
        f"https://127.0.0.2:{port}/img.png",
    ]
    for url in urls:
        with pytest.raises(PermanentError) as caught:
            fetch(url, context)
        assert caught.value.reason == REFUSED, url
    assert inside.connections == 0


def test_allowlisted_address_is_fetched(
    cdn: Counting, make_settings: Callable[..., Settings]
) -> None:
    image = fetch(cdn.url("/img.png"), context_for(make_settings, "127.0.0.1/32"))
    assert image.data == PNG_BYTES
    assert cdn.connections == 1


def test_a_redirect_to_a_refused_address_is_not_followed(
    cdn: Counting, inside: Counting, make_settings: Callable[..., Settings]
) -> None:
    context = context_for(make_settings, "127.0.0.1/32")
    targets = [
        inside.url("/img.png"),
        f"http://2130706434:{inside.port}/img.png",
        f"http://[::ffff:127.0.0.2]:{inside.port}/img.png",
        f"http://u:p@127.0.0.1:{cdn.port}/img.png",  # even back to the allowed host
        "http://169.254.169.254/latest/meta-data/",
        f"file:///etc/passwd#{inside.port}",
    ]
    for target in targets:
        with pytest.raises(PermanentError) as caught:
            fetch(cdn.url("/to?url=" + _quote(target)), context)
        assert caught.value.reason == REFUSED, target
    assert inside.connections == 0
    assert cdn.connections == len(targets)  # each first hop, nothing more


def test_at_most_three_redirects(cdn: Counting, make_settings: Callable[..., Settings]) -> None:
    context = context_for(make_settings, "127.0.0.1/32")
    assert fetch(cdn.url("/hops/3"), context).data == PNG_BYTES
    with pytest.raises(PermanentError, match="more than 3 redirects"):
        fetch(cdn.url("/hops/4"), context)


def test_connects_to_the_checked_address_and_keeps_the_name(inside: Counting) -> None:
    """The name is resolved once, by the guard; the connection goes to that address
    (here 127.0.0.2, where the real `localhost` does not point) with Host intact."""
    calls: list[str] = []
    resolve = resolver({"localhost": ["127.0.0.2"]}, calls)
    with PublicSession(Allowlist.parse(["127.0.0.2"]), resolve=resolve) as session:
        response = session.get(f"http://localhost:{inside.port}/img.png", timeout=2)
    assert response.content == PNG_BYTES
    assert calls == ["localhost"]
    assert inside.hosts == [f"localhost:{inside.port}"]


def test_https_keeps_the_name_for_sni_and_the_certificate(tmp_path: Any) -> None:
    """Pinned to 127.0.0.2, the TLS handshake still presents and verifies `localhost`:
    the certificate below is valid for that name only, not for the address."""
    import trustme

    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    servers = counting_server("127.0.0.2", tls=ca.issue_cert("localhost"))
    server = next(servers)
    try:
        resolve = resolver({"localhost": ["127.0.0.2"]}, [])
        with PublicSession(Allowlist.parse(["127.0.0.2"]), resolve=resolve) as session:
            url = f"https://localhost:{server.port}/img.png"
            assert session.get(url, timeout=2, verify=str(bundle)).content == PNG_BYTES
    finally:
        servers.close()


def test_a_refused_partner_feed_is_an_ingest_error_without_connecting(inside: Counting) -> None:
    from publisher.jobs.ingest import fetch as fetch_feed
    from publisher.jobs.partner_feed import IngestError

    with pytest.raises(IngestError, match=r"^refused: not a public address$"):
        fetch_feed(inside.url("/feed.xml"), etag=None, last_modified=None, timeout=2)
    assert inside.connections == 0


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="")
