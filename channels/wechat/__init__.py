"""WeChat Official Account: an article as a draft, published with freepublish.

A sub-package because the platform needs several steps, each with its own
facts (reference/channel-apis.md §1 and §7):

- `channel`: `WechatChannel`, its limits and the order of the steps;
- `formatting`: the HTML subset the platform keeps, and its 字 count;
- `media`: covers (with a generated card as the last resort) and body
  images re-hosted through `uploadimg`, none of which ever blocks a story;
- `publishing`: draft → freepublish → poll → mass send, checkpointed, with
  the rule for reconciling an ambiguous request;
- `lookup`: the bounded, resumable walk of a listing that reconciling uses;
- `digest`: multi-article messages;
- `client`: the shared access token, one call, the error classes.
"""

from channels.wechat.channel import WechatChannel
from channels.wechat.client import CODES, seconds_until_daily_reset
from channels.wechat.formatting import reduce_html, rewrite_images, utf16_length
from channels.wechat.publishing import clientmsgid

__all__ = [
    "CODES",
    "WechatChannel",
    "clientmsgid",
    "reduce_html",
    "rewrite_images",
    "seconds_until_daily_reset",
    "utf16_length",
]
