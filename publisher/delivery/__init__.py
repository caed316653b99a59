"""Delivery: planning an article's deliveries, running one attempt, deciding
retry or fail, pacing, feed rebuilds and failure notifications.

May import the store, the channels and everything below them; knows the
broker only through the `Dispatch` port it is handed (see `ports.py`).
"""
