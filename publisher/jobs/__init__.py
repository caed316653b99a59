"""Recurring jobs run by the beat: partner feed ingestion and syndication.

They publish through the delivery layer like any editor; they reach the
process's collaborators through the small `JobContext` port in `ports.py`.
"""
