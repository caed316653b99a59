"""/feeds and /media behave like a feed host: HEAD, validators and byte ranges.

Readers, crawlers and podcast directories ask with HEAD; podcast apps and
players seek and resume with `Range` and `If-Range`. The range rules are
checked as a table against `publisher.web.ranges`, then through the real app
served by uvicorn on loopback, since HEAD's Content-Length without a body is
the server's business as much as the app's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from publisher.web.ranges import ByteRange, RangeNotSatisfiable, if_range_holds, requested_range
from tests.conftest import SAMPLES
from tests.web.test_api import Api, error_of, make_api  # noqa: F401 - fixture

COVER = SAMPLES / "skills-contest.jpg"

# (Range header, length, the range served: None for the whole, "416" for refused)
RANGES: list[tuple[str, int, ByteRange | str | None]] = [
    ("bytes=0-1023", 5000, ByteRange(0, 1023)),
    ("bytes=0-0", 5000, ByteRange(0, 0)),
    ("bytes=4999-4999", 5000, ByteRange(4999, 4999)),
    ("bytes=100-", 5000, ByteRange(100, 4999)),
    ("bytes=100-999999999999", 5000, ByteRange(100, 4999)),  # clipped to the end
    ("bytes=-500", 5000, ByteRange(4500, 4999)),
    ("bytes=-9000", 5000, ByteRange(0, 4999)),  # a suffix longer than the whole
    ("BYTES = 1-2", 5000, ByteRange(1, 2)),  # unit is case-insensitive
    ("bytes=5000-", 5000, "416"),
    ("bytes=6000-7000", 5000, "416"),
    ("bytes=-0", 5000, "416"),
    ("bytes=0-", 0, "416"),
    ("bytes=-10", 0, None),  # nothing to cut out of nothing
    ("bytes=5-2", 5000, None),  # invalid: ignored
    ("bytes=0-1,5-6", 5000, None),  # several ranges: the whole instead
    ("items=0-5", 5000, None),
    ("bytes=-", 5000, None),
    ("bytes=a-b", 5000, None),
    ("bytes=" + "9" * 5000 + "-", 5000, None),  # more digits than int() takes
]


@pytest.mark.parametrize(("header", "length", "expected"), RANGES)
def test_range_rules(header: str, length: int, expected: ByteRange | str | None) -> None:
    if expected == "416":
        with pytest.raises(RangeNotSatisfiable):
            requested_range(header, length)
    else:
        assert requested_range(header, length) == expected


def test_if_range_compares_strongly() -> None:
    built = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
    date = format_datetime(built, usegmt=True)
    assert if_range_holds('"abc"', '"abc"', built)
    assert not if_range_holds('"abd"', '"abc"', built)
    assert not if_range_holds('W/"abc"', '"abc"', built)  # weak never matches
    assert if_range_holds(date, '"abc"', built.replace(microsecond=5))
    assert not if_range_holds(date, '"abc"', built + timedelta(seconds=1))
    assert not if_range_holds(date, '"abc"', None)  # no date sent: none to match
    assert not if_range_holds("yesterday", '"abc"', built)


def _get(api: Api, path: str, **headers: str) -> requests.Response:
    return api.get(path, headers=headers)


def test_media_answers_head_ranges_and_validators(make_api: Callable[..., Api]) -> None:  # noqa: F811
    api = make_api(worker=False)
    data = COVER.read_bytes()
    size = len(data)
    path = "/" + api.stack.runtime.store.save_media_file(COVER)

    whole = api.get(path)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["Accept-Ranges"] == "bytes"
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    assert modified.endswith(" GMT")

    head = requests.head(api.url + path, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(size)
    for name in ("Content-Type", "ETag", "Last-Modified", "Accept-Ranges", "Cache-Control"):
        assert head.headers[name] == whole.headers[name], name

    first = _get(api, path, Range="bytes=0-1023")
    assert first.status_code == 206 and first.content == data[:1024]
    assert first.headers["Content-Range"] == f"bytes 0-1023/{size}"
    assert first.headers["Content-Length"] == "1024"
    assert first.headers["Content-Type"] == "image/jpeg" and first.headers["ETag"] == etag
    rest = _get(api, path, Range="bytes=1024-")
    assert rest.status_code == 206 and first.content + rest.content == data
    tail = _get(api, path, Range="bytes=-100")
    assert tail.content == data[-100:]
    assert tail.headers["Content-Range"] == f"bytes {size - 100}-{size - 1}/{size}"

    past = _get(api, path, Range=f"bytes={size}-")
    assert past.status_code == 416
    assert past.headers["Content-Range"] == f"bytes */{size}"
    assert error_of(past)["field"] == "Range"
    assert "max-age" not in past.headers.get("Cache-Control", "")  # never cached for a year
    assert _get(api, path, Range="bytes=0-1,4-5").content == data  # several: the whole

    # Resuming: the range holds while If-Range still names these bytes.
    assert _get(api, path, Range="bytes=0-9", **{"If-Range": etag}).status_code == 206
    assert _get(api, path, Range="bytes=0-9", **{"If-Range": modified}).status_code == 206
    changed = _get(api, path, Range="bytes=0-9", **{"If-Range": '"other"'})
    assert changed.status_code == 200 and changed.content == data
    # Validators come first; HEAD ignores Range.
    assert _get(api, path, Range="bytes=0-9", **{"If-None-Match": etag}).status_code == 304
    assert _get(api, path, **{"If-Modified-Since": modified}).status_code == 304
    ranged_head = requests.head(api.url + path, headers={"Range": "bytes=0-9"}, timeout=10)
    assert ranged_head.status_code == 200 and ranged_head.headers["Content-Length"] == str(size)
    missing = requests.head(api.url + "/media/" + "0" * 64 + ".jpg", timeout=10)
    assert missing.status_code == 404


def test_feeds_answer_head_and_ranges(make_api: Callable[..., Api]) -> None:  # noqa: F811
    api = make_api(worker=False)
    # HEAD first: it builds the document on demand, as a GET does.
    head = requests.head(api.url + "/feeds/rss.xml", timeout=10)
    assert head.status_code == 200 and head.content == b""
    whole = api.get("/feeds/rss.xml")
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Content-Length"] == str(len(whole.content))
    assert head.headers["ETag"] == whole.headers["ETag"]
    assert head.headers["Content-Type"] == whole.headers["Content-Type"]

    etag, size = whole.headers["ETag"], len(whole.content)
    parts = [
        _get(api, "/feeds/rss.xml", Range="bytes=0-99", **{"If-Range": etag}),
        _get(api, "/feeds/rss.xml", Range="bytes=100-"),
    ]
    assert [p.status_code for p in parts] == [206, 206]
    assert parts[0].headers["Content-Range"] == f"bytes 0-99/{size}"
    assert b"".join(p.content for p in parts) == whole.content
    assert _get(api, "/feeds/rss.xml", Range=f"bytes={size + 5}-").status_code == 416
    assert requests.head(api.url + "/feeds/secrets.txt", timeout=10).status_code == 404
    for name in ("atom.xml", "app.json"):
        assert requests.head(f"{api.url}/feeds/{name}", timeout=10).status_code == 200
