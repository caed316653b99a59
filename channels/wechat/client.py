"""The WeChat API conversation: the shared access token, one call, its error classes.

Every WeChat endpoint answers HTTP 200 with `errcode` in the body
(reference/channel-apis.md §1), so the classification lives here once and the
publishing steps only say what they call. Tokens come from `stable_token`,
shared by every worker through `publisher.tokencache`; 40001/40014/42001 are
`AuthExpiredError` (the token is dropped before any other worker asks for it).
The access token travels in the query string and the app secret in a JSON
body, so reasons never contain URLs and platform messages are scrubbed.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from channels.base import ChannelContext
from channels.http import CodeTable, PlatformSession, classify_code, json_body, request
from publisher.config.settings import ChannelConfig
from publisher.coord.tokencache import FreshToken, TokenCache
from publisher.domain.errors import (
    AuthExpiredError,
    ConfigError,
    OutcomeUnknownError,
    PermanentError,
    ReauthRequiredError,
    RetryableError,
)

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
BEIJING = timezone(timedelta(hours=8))

#: The "WeChat retry classes" table; codes not listed are permanent.
CODES = CodeTable.of(
    auth_expired=[40001, 40014, 42001],
    retryable=[-1, 45066],
    # The account's per-minute limit, its API's daily quota, its mass-send quota.
    rate_limited=[45011, 45009, 45028],
    success=[45065],
    retry_after={"45011": 60.0, "45066": 60.0},
)
#: Credential errors only a person can fix (reference §1): announced as `reauth`.
REAUTHORISE = {
    "40013": "check the AppID in {appid_env}",
    "40125": "put the account's current AppSecret in {secret_env}",
    "40164": "add this server's IP to the account's IP whitelist",
    "40243": "the AppSecret is frozen: unfreeze or reset it, then update {secret_env}",
}
#: Quotas that come back after the daily reset (Beijing midnight).
DAILY_QUOTA_CODES = frozenset({"45009", "45028"})
#: Calls that can leave a second copy behind: only their timeouts stay ambiguous.
NOT_IDEMPOTENT = frozenset({"draft/add", "freepublish/submit"})

_TOKEN_IN_TEXT = re.compile(r"access_token=[^&\s]+")


class WechatApi:
    """One channel's authenticated calls to the Official Account API."""

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        self.config = config
        self.context = context
        self._session: requests.Session | None = None
        self._token_cache: TokenCache | None = None
        self._token: str | None = None  # the last token sent, to invalidate if rejected

    def call(
        self,
        what: str,
        path: str,
        *,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """One authenticated API call; a platform errcode becomes a classified error.

        Only draft/add and freepublish/submit can leave a second copy behind,
        so only their timeouts stay `OutcomeUnknownError`; any other call is
        safe to repeat and its timeout is a plain `RetryableError`.
        """
        token = self._tokens().get()
        self._token = token
        kwargs: dict[str, Any] = {"params": {**(params or {}), "access_token": token}}
        if payload is not None:
            kwargs["data"] = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            kwargs["headers"] = {"Content-Type": "application/json; charset=utf-8"}
        if files is not None:
            kwargs["files"] = files
        try:
            response = request(
                self._http(), "POST", self._url(path), timeout=self.config.timeout, what=what,
                **kwargs,
            )  # fmt: skip
        except OutcomeUnknownError as exc:
            if path in NOT_IDEMPOTENT:
                raise
            raise RetryableError(exc.reason) from None
        data = json_body(response, what)
        self._raise_for_errcode(data, what, token)
        return data

    def refresh_auth(self) -> None:
        """Drop the token the platform rejected (only if it is still the cached one)."""
        if self._token is not None and self._token_cache is not None:
            self._token_cache.invalidate(self._token)
        self._token = None

    def option_float(self, key: str, default: float) -> float:
        """A numeric channel option; a bad value is the editor's to fix, so permanent."""
        value = self.config.option(key, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PermanentError(f"channels.{self.config.name}.{key} must be a number") from None

    def _raise_for_errcode(self, data: dict[str, Any], what: str, token: str | None) -> None:
        code = data.get("errcode", 0)
        if code in (0, "0", None) or str(code) in CODES.success:
            return
        message = self._scrub(str(data.get("errmsg") or "error"))[:300]
        if str(code) in REAUTHORISE:
            hint = REAUTHORISE[str(code)].format(
                appid_env=self.config.option("appid_env"),
                secret_env=self.config.option("secret_env"),
            )
            raise ReauthRequiredError(f"{what}: {message} (code {code}); {hint}", code=code)
        error = classify_code(CODES, code, f"{what}: {message}")
        if isinstance(error, AuthExpiredError) and token is not None:
            self._tokens().invalidate(token)  # before any other worker asks for it
        if isinstance(error, RetryableError) and error.code in DAILY_QUOTA_CODES:
            error.retry_after = seconds_until_daily_reset()
        raise error

    def _fetch_token(self, force: bool) -> FreshToken:
        """`stable_token`: the same token for every caller while it is valid."""
        what = "get access token"
        body = {
            "grant_type": "client_credential",
            "appid": self._secret("appid"),
            "secret": self._secret("secret"),
            "force_refresh": force,
        }
        try:
            response = request(
                self._http(), "POST", self._url("stable_token"), timeout=self.config.timeout,
                what=what, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
        except OutcomeUnknownError as exc:
            raise RetryableError(exc.reason) from None
        data = json_body(response, what)
        self._raise_for_errcode(data, what, None)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryableError(f"{what}: the answer holds no token")
        return FreshToken(token, float(data.get("expires_in") or 7200))

    def _tokens(self) -> TokenCache:
        if self._token_cache is None:
            if self.context.redis is None:
                raise PermanentError("WeChat needs Redis for its shared access-token cache")
            appid = self._secret("appid")
            where = hashlib.sha256(self._base_url().encode()).hexdigest()[:12]
            self._token_cache = TokenCache(
                self.context.redis,
                self.context.settings,
                f"wechat:{appid}:{where}",
                self._fetch_token,
                refresh_margin=self.option_float("token_refresh_margin", 60.0),
                lock_timeout=max(30.0, 2 * self.config.timeout + 5),
            )
        return self._token_cache

    def _secret(self, key: str) -> str:
        try:
            return self.config.secret(key)
        except ConfigError as exc:  # names the variable, never a value
            raise PermanentError(str(exc)) from None

    def _scrub(self, text: str) -> str:
        """Platform messages may echo what they were sent; keep credentials out of reasons."""
        text = _TOKEN_IN_TEXT.sub("access_token=***", text)
        for value in (self._token, self._secret_or_none("secret")):
            if value:
                text = text.replace(value, "***")
        return text

    def _secret_or_none(self, key: str) -> str | None:
        try:
            return self.config.secret(key)
        except ConfigError:
            return None

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = PlatformSession()
        return self._session

    def _base_url(self) -> str:
        return (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _url(self, path: str) -> str:
        return f"{self._base_url()}/cgi-bin/{path}"


def seconds_until_daily_reset(now: datetime | None = None) -> float:
    """Daily quotas reset at midnight, Beijing time."""
    current = (now or datetime.now(BEIJING)).astimezone(BEIJING)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - current).total_seconds() + 60.0


def required(data: dict[str, Any], key: str, what: str) -> str:
    """A field the platform's success answer must hold; its absence is a garbled answer."""
    value = data.get(key)
    if value in (None, ""):
        raise RetryableError(f"{what}: the platform's answer has no {key}")
    return str(value)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def truthy(value: Any) -> bool:
    """A TOML or environment flag: true, "yes", "1", "on"."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
