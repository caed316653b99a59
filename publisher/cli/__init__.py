"""The `publisher` command line: the top layer; nothing imports it."""
