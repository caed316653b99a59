"""Settings: environment over the matrix TOML, validated when a process starts.

May import only `publisher.domain`. Secrets are named here, never held.
"""
