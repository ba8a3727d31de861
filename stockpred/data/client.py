"""The tushare Pro client, with retries, back-off, paging and error classification.

tushare's ``DataApi.query`` raises a bare ``Exception(msg)`` when the server answers
with a non-zero code, and returns an empty frame *without columns* on any HTTP error
status. A genuine "no rows" answer still carries the field list, so a frame without
columns is treated as a failed call and retried, never as "no data".
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable

import pandas as pd
import requests

from stockpred.config import TushareSettings
from stockpred.data.catalogue import Interface
from stockpred.errors import IncompleteError, InputError, StockpredError

# Phrases in tushare's error messages, by what they mean.
_MINUTE_LIMIT = ("每分钟最多访问", "每分钟最多", "访问频率")
_DAILY_QUOTA = ("每天最多访问", "每日最多访问", "今日访问次数")
_BAD_TOKEN = ("token不对", "token无效", "您的token", "请设置token")
_NO_PERMISSION = ("没有接口访问权限", "没有访问该接口的权限", "权限不足", "积分不足")


class QuotaExhausted(IncompleteError):
    def __init__(self, api_name: str):
        super().__init__(f"tushare daily quota reached on {api_name}")
        self.api_name = api_name


class NoPermission(StockpredError):
    def __init__(self, api_name: str):
        super().__init__(f"this tushare account has no permission for {api_name}")
        self.api_name = api_name


class _Retryable(Exception):
    """A failed attempt worth repeating after a pause."""


class TushareClient:
    """Calls tushare Pro through the ``tushare`` package, counting every HTTP request."""

    def __init__(self, token: str, settings: TushareSettings, url: str,
                 sleep: Callable[[float], None] = time.sleep):
        import tushare

        self._token = token
        self._settings = settings
        self._api = tushare.pro_api(token=token, timeout=settings.timeout_s)
        # DataApi keeps its endpoint in a name-mangled class attribute; set it per instance.
        self._api._DataApi__http_url = url.rstrip("/")
        self._sleep = sleep
        self._last_call = 0.0
        self.calls: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def rows_per_call(self, iface: Interface) -> int:
        return self._settings.rows_per_call.get(iface.name, iface.rows_per_call)

    def _throttle(self) -> None:
        per_minute = self._settings.calls_per_minute
        if per_minute:
            wait = self._last_call + 60.0 / per_minute - time.monotonic()
            if wait > 0:
                self._sleep(wait)
        self._last_call = time.monotonic()

    def _attempt(self, iface: Interface, params: dict) -> pd.DataFrame:
        self._throttle()
        self.calls[iface.name] += 1
        try:
            frame = self._api.query(iface.name, **params)
        except (requests.RequestException, json.JSONDecodeError) as exc:
            raise _Retryable(f"{type(exc).__name__}") from None
        except Exception as exc:  # tushare's bare Exception(msg) for code != 0
            msg = str(exc)
            if any(p in msg for p in _MINUTE_LIMIT):
                raise _Retryable("per-minute rate limit") from None
            if any(p in msg for p in _DAILY_QUOTA):
                raise QuotaExhausted(iface.name) from None
            if any(p in msg for p in _BAD_TOKEN):
                raise InputError("tushare rejected the token: check TUSHARE_TOKEN or the "
                                 "tushare_token in your user config") from None
            if any(p in msg for p in _NO_PERMISSION):
                raise NoPermission(iface.name) from None
            raise _Retryable(f"server error: {self.redact(msg)[:200]}") from None
        if len(frame.columns) == 0:
            raise _Retryable("empty reply without fields (HTTP error)")
        return frame

    def query(self, iface: Interface, params: dict) -> pd.DataFrame:
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
                self._sleep(delay * random.uniform(0.5, 1.0))
        raise StockpredError(f"tushare {iface.name} failed after {settings.max_retries + 1} "
                             f"attempts (last: {last})")

    def fetch(self, iface: Interface, params: dict) -> pd.DataFrame:
        """Every row matching ``params``, paging with offset/limit past the per-call cap."""
        cap = self.rows_per_call(iface)
        pages, offset = [], 0
        while True:
            page = self.query(iface, {**iface.fixed_params, **params,
                                      "offset": offset, "limit": cap})
            pages.append(page)
            if len(page) < cap:
                break
            offset += len(page)
        non_empty = [p for p in pages if len(p)]
        return pd.concat(non_empty, ignore_index=True) if non_empty else pages[0]
