"""The remote posts one delivery consists of, as its checkpoint lists them.

Most deliveries are one remote post, its id the receipt's `remote_id`. A
channel whose one delivery is several posts (a Mastodon thread) lists them
in the checkpoint as it posts them, so that a retraction removes every one,
including those of a thread that never finished; the store (which decides
whether anything went out) and the engine (which removes it) read the list
here, below both of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The checkpoint key: the posts in order, the receipt's (the first) first.
POSTS_KEY = "posts"


def remote_posts(checkpoint: Mapping[str, Any] | None, remote_id: str | None = None) -> list[str]:
    """The remote posts a delivery consists of, in order: those its checkpoint lists,
    else `remote_id` alone (else none)."""
    posts = (checkpoint or {}).get(POSTS_KEY)
    if isinstance(posts, list) and posts:
        return [str(p) for p in posts]
    return [remote_id] if remote_id else []
