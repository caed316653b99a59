"""Outbound network safety: the fetch guard, capped reads, log redaction.

Everything here is about talking to the outside world without letting
content or a partner turn the product against its own network, its memory
or its logs. Nothing here knows about channels, the store or the web layer.
"""
