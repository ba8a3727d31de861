"""The tushare Pro client, with retries, back-off, paging and error classification.

It speaks tushare's HTTP protocol itself, exactly as ``tushare``'s ``DataApi.query``
does (a POST of ``{api_name, token, params, fields}`` to ``<url>/<api_name>``), because
``DataApi.query`` drops the reply's ``has_more``: the one signal that tells a page cut
by a row cap lower than the catalogue's from a complete short reply without another
call. A reply with a non-zero code carries a message, classified by its wording; a
reply without a field list is a failed call and retried, never "no data". A body is
decoded by the charset its Content-Type declares, else as UTF-8, else as GB18030 (a
superset of GBK), so a Chinese name in a body that does not say it is GBK is kept.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from email.message import Message

import pandas as pd
import requests

from stockpred.config import TushareSettings
from stockpred.data.catalogue import Interface
from stockpred.errors import IncompleteError, InputError, StockpredError

# Phrases in tushare's error messages, by what they mean. Rate-limit replies end with a
# link to "权限的具体详情", so they are told apart before any wording about 权限 (permission)
# or 积分 (points) counts as a missing permission.
_RATE_LIMIT = ("最多访问", "访问频率")
_DAILY_QUOTA = ("每天最多访问", "每日最多访问", "今日访问次数")
_BAD_TOKEN = ("token不对", "token无效", "您的token", "请设置token")
_NO_PERMISSION = ("权限", "积分")
# tried in turn on a body whose charset is not declared: UTF-8 rejects GBK's bytes,
# GB18030 (GBK's superset) then reads them
_UNDECLARED_CHARSETS = ("utf-8", "gb18030")
# The row caps tushare sets are multiples of this (all but anns' 50, which the catalogue
# assumes already), so a short page of such a length may be a full page of a cap lower
# than the one assumed; one reply in a hundred costs an empty page more.
ROUND_CAP = 100

log = logging.getLogger(__name__)


class QuotaExhausted(IncompleteError):
    def __init__(self, api_name: str):
        super().__init__(f"tushare daily quota reached on {api_name}")
        self.api_name = api_name


class NoPermission(StockpredError):
    def __init__(self, api_name: str):
        super().__init__(f"this tushare account has no permission for {api_name}")
        self.api_name = api_name


class CallFailed(StockpredError):
    """A call that kept failing through every retry: its interface is incomplete."""

    def __init__(self, api_name: str, message: str):
        super().__init__(message)
        self.api_name = api_name


class _Retryable(Exception):
    """A failed attempt worth repeating after a pause."""


def reply_text(reply: requests.Response) -> str:
    """The body as text: by its declared charset, else the first that decodes it."""
    header = Message()
    header["content-type"] = reply.headers.get("Content-Type", "")
    declared = header.get_content_charset()
    for charset in (declared, *_UNDECLARED_CHARSETS) if declared else _UNDECLARED_CHARSETS:
        try:
            return reply.content.decode(charset)
        except (LookupError, UnicodeDecodeError):  # an unknown or a wrong declaration
            continue
    raise _Retryable("reply in an unknown encoding")


class TushareClient:
    """Calls tushare Pro over HTTP, counting every request."""

    def __init__(self, token: str, settings: TushareSettings, url: str,
                 sleep: Callable[[float], None] = time.sleep):
        self._token = token
        self._settings = settings
        self._url = url.rstrip("/")
        self._sleep = sleep
        self._last_call = 0.0
        self._learned_caps: dict[str, int] = {}
        self.calls: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def rows_per_call(self, iface: Interface) -> int:
        """The server's cap once a page has shown it, else config's or the catalogue's."""
        return self._learned_caps.get(
            iface.name, self._settings.rows_per_call.get(iface.name, iface.rows_per_call))

    def _throttle(self) -> None:
        per_minute = self._settings.calls_per_minute
        if per_minute:
            wait = self._last_call + 60.0 / per_minute - time.monotonic()
            if wait > 0:
                self._sleep(wait)
        self._last_call = time.monotonic()

    def _attempt(self, iface: Interface, params: dict) -> tuple[pd.DataFrame, bool | None]:
        """One request: the rows and the reply's has_more (None when it has none)."""
        self._throttle()
        self.calls[iface.name] += 1
        body = {"api_name": iface.api, "token": self._token, "params": params, "fields": ""}
        try:
            reply = requests.post(f"{self._url}/{iface.api}", json=body,
                                  timeout=self._settings.timeout_s)
            if not reply.ok:
                raise _Retryable(f"HTTP {reply.status_code}")
            result = json.loads(reply_text(reply))
        except (requests.RequestException, ValueError) as exc:
            raise _Retryable(f"{type(exc).__name__}") from None
        if result.get("code") != 0:
            raise self._classify(iface, str(result.get("msg") or result.get("code")))
        data = result.get("data") or {}
        if not data.get("fields"):
            raise _Retryable("reply without fields")
        return pd.DataFrame(data.get("items") or [], columns=data["fields"]), data.get("has_more")

    def _classify(self, iface: Interface, msg: str) -> Exception:
        if any(p in msg for p in _DAILY_QUOTA):
            return QuotaExhausted(iface.name)
        if any(p in msg for p in _RATE_LIMIT):
            return _Retryable("rate limit")
        if any(p in msg for p in _BAD_TOKEN):
            return InputError("tushare rejected the token: check TUSHARE_TOKEN or the "
                              "tushare_token in your user config")
        if any(p in msg for p in _NO_PERMISSION):
            return NoPermission(iface.name)
        return _Retryable(f"server error: {self.redact(msg)[:200]}")

    def query(self, iface: Interface, params: dict) -> tuple[pd.DataFrame, bool | None]:
        """One page, retried with exponential back-off and jitter on transient failures."""
        settings = self._settings
        for attempt in range(settings.max_retries + 1):
            try:
                return self._attempt(iface, params)
            except _Retryable as exc:
                last = str(exc)
                if attempt == settings.max_retries:
                    break
                self.retries[iface.name] += 1
                delay = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** attempt)
                delay *= random.uniform(0.5, 1.0)
                log.warning("tushare %s: %s; retry %d of %d in %.1f s", iface.name, last,
                            attempt + 1, settings.max_retries, delay)
                self._sleep(delay)
        raise CallFailed(iface.name, f"tushare {iface.name} failed after "
                                     f"{settings.max_retries + 1} attempts (last: {last})")

    def fetch(self, iface: Interface, params: dict, expect: int = 0) -> pd.DataFrame:
        """Every row matching ``params``, paging with offset/limit past the per-call cap.

        A full page is followed by another even when has_more is false. A short page ends
        the rows only when nothing makes it look cut: a page the server says has more, one
        whose length is a round number (a multiple of ROUND_CAP, as every cap tushare
        sets), or rows still short of ``expect`` (the fewest the caller finds plausible)
        are followed by the next offset. A page after a short one that brings rows shows
        the short one's length to be the server's cap, kept for every later call: a
        server that omits or misstates has_more loses nothing, and the cost is one empty
        page now and then.
        """
        pages, offset, short = [], 0, 0
        while True:
            cap = self.rows_per_call(iface)
            page, more = self.query(iface, {**iface.fixed_params, **params,
                                            "offset": offset, "limit": cap})
            pages.append(page)
            if short and len(page):
                self._learned_caps[iface.name] = cap = short
            short = 0
            if len(page) < cap:
                if not len(page) or not (more or len(page) % ROUND_CAP == 0
                                         or offset + len(page) < expect):
                    break
                short = len(page)
            offset += len(page)
        non_empty = [p for p in pages if len(p)]
        return pd.concat(non_empty, ignore_index=True) if non_empty else pages[0]
