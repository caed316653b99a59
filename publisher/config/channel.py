"""One `[channels.NAME]` table: the keys every channel type shares, and its own options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from publisher.domain.errors import ConfigError


class ChannelConfig(BaseModel):
    """One `[channels.NAME]` table. Unknown keys are the channel type's own options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    type: str
    base_url: str | None = None
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base: float = Field(default=2.0, gt=0)
    backoff_cap: float = Field(default=900.0, gt=0)
    timeout: float = Field(default=15.0, gt=0)
    #: `serve`, `demo` and `sandbox` start this channel's platform stand-in on
    #: `base_url` (a loopback address with a port). Only when asked: a channel
    #: on loopback may just as well point at a gateway or a test double.
    sandbox: bool = False

    def option(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)

    def secret(self, key: str, env: Mapping[str, str] | None = None) -> str:
        """The secret named by `<key>_env`, read from the environment now.

        The error names the variable, never a value.
        """
        var = self.option(f"{key}_env")
        if not var:
            raise ConfigError(f"channels.{self.name}.{key}_env is not set")
        value = (env if env is not None else os.environ).get(var)
        if not value:
            raise ConfigError(
                f"channels.{self.name}: environment variable {var} (for {key}) is empty"
            )
        return str(value)
