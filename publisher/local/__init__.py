"""One machine, everything embedded: the stack that `demo` and `serve` share."""
