"""The HTTP surface: the JSON API, the feeds and media it serves, the dashboard.

May import everything below it; nothing below imports the web.
"""
