"""Coordination between processes through Redis: the embedded broker, the
shared token bucket and the shared platform-token cache.

May import `publisher.config` and `publisher.domain`; channels build on it.
"""
