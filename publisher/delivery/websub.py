"""WebSub publishing: telling the hub that a feed changed, so it pushes to followers.

The feeds advertise the hub (`rel="hub"` and `rel="self"` in the documents
and in the `Link` header the API sends); followers subscribe there. The
WebSub recommendation leaves the publisher-to-hub step to each hub: public
hubs take a form POST `hub.mode=publish` naming the topic as `hub.url`, some
read `hub.topic`, so both are sent. The hub then fetches the topic itself,
which is why a ping must come only after the new document is live.

A ping is a courtesy, not a delivery: a hub that is down or refuses costs a
logged warning, never a failed rebuild, and the next rebuild pings again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

#: (connect, read) seconds for one ping; a rebuild waits at most this long per topic,
#: and gives up on the remaining topics once the hub is unreachable.
PING_TIMEOUT = (3.05, 10.0)


def link_header(hub_url: str, self_url: str) -> str:
    """The discovery `Link` header of a topic (WebSub §4)."""
    return f'<{hub_url}>; rel="hub", <{self_url}>; rel="self"'


def ping_hub(
    hub_url: str | None,
    topics: Iterable[str],
    *,
    timeout: float | tuple[float, float] = PING_TIMEOUT,
) -> list[str]:
    """Tell the hub each topic changed; returns the topics it accepted (2xx).

    Never raises for the hub's sake: failures are logged with the hub's
    address stripped of credentials and query, and the caller carries on.
    """
    if not hub_url:
        return []
    hub = _redacted(hub_url)
    accepted: list[str] = []
    with requests.Session() as session:
        for topic in topics:
            form = {"hub.mode": "publish", "hub.url": topic, "hub.topic": topic}
            try:
                response = session.post(hub_url, data=form, timeout=timeout)
            except requests.RequestException as exc:
                # The exception's text can quote the hub URL's query: log its kind only.
                log.warning("WebSub hub %s not reached for %s: %s", hub, topic, type(exc).__name__)
                break  # the same hub serves every topic: don't wait out each one
            if 200 <= response.status_code < 300:
                accepted.append(topic)
            else:
                log.warning(
                    "WebSub hub %s refused the ping for %s: HTTP %d",
                    hub, topic, response.status_code,
                )  # fmt: skip
    return accepted


def _redacted(url: str) -> str:
    """`url` without user info, query or fragment: the parts that may hold a token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
