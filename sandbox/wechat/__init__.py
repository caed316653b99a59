"""A stand-in for the WeChat Official Account API, faithful to `reference/channel-apis.md` §1.

It exists because nothing like it does: no server-side emulator of token,
material, draft, freepublish and mass send was found, and the real platform
needs a certified account and a whitelisted IP. Clients written for the real
API (our channel, wechatpy) run against it unchanged once pointed at its
base URL.

What it reproduces, because the channel's correctness depends on it:

- HTTP 200 for everything, errors as `{"errcode", "errmsg": "... rid: ..."}`;
  41001 without a token, 40001 for an invalid or expired one, 47001 for a
  body that is not JSON.
- `stable_token` returns the same token while it is valid, with what is left
  of its lifetime, and rotates it `token_overlap` seconds before expiry;
  `force_refresh` rotates at once and the old token dies after the overlap.
  `/token` is separate, and each call ends older `/token` tokens after the
  overlap. `token_lifetime` is configurable so tests can watch a token expire.
- Drafts validated like the platform: title ≤ 32, author ≤ 16, digest ≤ 128
  (code points), content < 20 000 characters and < 1 MB, a *permanent*
  `thumb_media_id` (else 40007); scripts, event handlers and external
  `<img>` sources are removed from stored content; bodies are raw UTF-8, so a
  `\\uXXXX` escape for a non-ASCII character is stored literally, garbled.
- `freepublish/submit` only accepts a job: it completes `publish_delay`
  seconds later (status 1, then 0 or a failure), the draft then leaves the
  draft box, and the article gets a page this sandbox serves to followers.
- `message/mass/sendall` de-duplicates `clientmsgid` (45065 with the first
  `msg_id`), enforces a daily quota (45028) and 60 calls a minute (45011).

- Listings (`draft/batchget`, `freepublish/batchget`) page newest first
  with `update_time`, ties kept in publishing order; `/_control/published`
  adds history published by someone else (`count`, `age_seconds`), so a
  lookup can be made to walk hundreds of items. `draft/get` answers 40007
  once a draft has left the box.
- `daily_quota` (per `/cgi-bin/...` path) makes an API answer 45009 once the
  day's calls are used (Beijing days), with `openapi/quota/get` and
  `clear_quota` as on the platform.

The package: `platform` (limits, error codes, records), `state` (the rules),
`app` (HTTP). Faults come from `sandbox/faults.py`: queue one for an endpoint path. One
extra pseudo-path, `job:freepublish`, is consumed when a publish job is
accepted: mode `error` with `code` 2, 3 or 4 makes that job end with that
`publish_status`. `/_control/stats` gives the counts tests check (`published_pages` and
`draft_pages`: listing pages served; `quota_refusals`), above all
`duplicate_posts`: drafts or published articles that are a second copy of
one article (same `content_source_url`), which must stay zero.
"""

from sandbox.wechat.app import create_app
from sandbox.wechat.platform import DEFAULT_SECRET, PUBLISH_FAULT_PATH, WechatApiError
from sandbox.wechat.state import WechatState

__all__ = ["DEFAULT_SECRET", "PUBLISH_FAULT_PATH", "WechatApiError", "WechatState", "create_app"]
