"""A tushare-compatible HTTP server on 127.0.0.1 that replays stored tables.

It answers the real ``tushare`` client exactly as tushare Pro does: a POST of
``{api_name, token, params, fields}`` to ``<url>/<api_name>`` gets
``{"code": 0, "msg": "", "data": {"fields": [...], "items": [[...], ...], "has_more": b}}``,
newest rows first, at most ``caps[api]`` rows per call from ``offset``, filtered by
the query parameters the catalogue declares. Faults can be queued (per-minute limit,
daily quota, HTTP 500, dropped connection, each wording of no permission, a valid
reply without rows, a reply held back ``slow_s`` seconds), to any call or to the calls
whose parameters match, to test how a fetch survives them. With ``has_more=False`` the
replies omit ``has_more``, as a server that pages without saying so. Bodies are UTF-8 unless ``charset`` names another (``gbk``, say), declared in
Content-Type or, with ``declare_charset=False``, not.
The test suite and scripts/bench_fetch.py use it; it binds to loopback only.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd

from stockpred.data.catalogue import CATALOGUE, Interface, tables_of_api
from stockpred.data.sample import CALENDAR_INDEX, trade_calendar

_DOC = "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
# (code, message) of each error reply; "{api}" stands for the interface asked. The three
# permission replies are wordings tushare has answered an account without the points.
FAULT_REPLIES = {
    "minute_limit": (40203, f"抱歉，您每分钟最多访问该接口200次，{_DOC}"),
    "daily_quota": (40203, f"抱歉，您每天最多访问该接口5000次，{_DOC}"),
    "no_permission": (40203, f"抱歉，您没有访问该接口的权限，{_DOC}"),
    "no_permission_2002": (-2002, f"抱歉，您没有权限访问该接口，{_DOC}"),
    "no_api_permission": (40203, "没有接口({api})访问权限"),
}
# "empty": a valid reply with the fields and no rows, as a glitch of the server can send;
# "slow": the right reply, sent only after the server's slow_s seconds
FAULTS = (*FAULT_REPLIES, "http500", "drop", "empty", "slow")
BAD_TOKEN_REPLY = "您的token不对，请确认。"


def replay_tables(real: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Server tables built from the real sample tables (see stockpred.data.sample).

    Only 600036.SH has unadjusted bars in the real data; the other SSE 50 stocks are
    served from their real forward-adjusted bars under ``daily``, which the fetch
    mechanics (calls, paging, upserts) do not distinguish. ``adj_factor`` for
    600036.SH is the ratio of its real forward-adjusted to its unadjusted close.
    ``trade_cal`` is derived from the SSE Composite's days, as the sample loader does.
    """
    unadjusted, qfq = real["daily"], real["qfq_daily"]
    others = qfq[~qfq["ts_code"].isin(unadjusted["ts_code"])]
    both = unadjusted.merge(qfq, on=["ts_code", "trade_date"], suffixes=("", "_qfq"))
    factors = both[["ts_code", "trade_date"]].assign(
        adj_factor=(both["close_qfq"] / both["close"]).round(4))
    index = real["index_daily"]
    days = index.loc[index["ts_code"] == CALENDAR_INDEX, "trade_date"]
    tables = {k: v for k, v in real.items() if k != "qfq_daily"}
    return {**tables, "daily": pd.concat([unadjusted, others], ignore_index=True),
            "adj_factor": factors, "trade_cal": trade_calendar(list(days))}


def market_replay_tables(market: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Server tables built from the market-scale data (see stockpred.data.sample.read_market_tree).

    The market bars are forward-adjusted prices with raw ``vol`` and ``amount``; they are
    served under ``daily``, as replay_tables serves the SSE 50's, since no unadjusted
    bars or adjustment factors of those stocks exist. ``trade_cal`` opens on the days
    any of the stocks traded.
    """
    bars = market["qfq_daily"]
    return {"stock_basic": market["stock_basic"], "daily": bars,
            "trade_cal": trade_calendar(list(bars["trade_date"].unique()))}


def tables_as_of(tables: dict[str, pd.DataFrame], last_day: str) -> dict[str, pd.DataFrame]:
    """The tables as a server would have held them at the close of ``last_day`` (YYYYMMDD)."""
    out = {}
    for name, table in tables.items():
        field = CATALOGUE[name].date_field
        out[name] = table if field is None else table[
            table[field].str.replace("-", "").str[:8] <= last_day]
    return out


class _ServedTable:
    """One table oldest first, with each subject's rows and the dates ready for binary search.

    Masks over the whole table cost about 0.1 s a call on the 2.9 million market rows,
    minutes for a by-day sweep of the market; positions found this way cost microseconds.
    """

    def __init__(self, table: pd.DataFrame, iface: Interface):
        date = iface.date_field
        if date:
            table = table.sort_values([date, *iface.keys], kind="stable")
        self.table = table.reset_index(drop=True)
        self._dates = self.table[date].to_numpy(dtype=str) if date else None
        subject = iface.subject_param if iface.subject else None
        self._rows_of = (self.table.groupby(subject, sort=False).indices
                         if subject in self.table.columns else None)

    def rows(self, subjects: list[str] | None, first: str | None,
             last: str | None) -> np.ndarray:
        """Positions, in tushare's reply order (newest first), of the rows about ``subjects``
        (every subject when None) dated ``first`` to ``last`` (open-ended when None)."""
        if subjects is None or self._rows_of is None:
            rows, dates = np.arange(len(self.table)), self._dates
        else:
            rows = np.sort(np.concatenate([self._rows_of.get(s, np.empty(0, dtype=np.intp))
                                           for s in subjects]))
            dates = None if self._dates is None else self._dates[rows]
        if dates is None:
            return rows
        lo = np.searchsorted(dates, first, side="left") if first else 0
        hi = np.searchsorted(dates, last, side="right") if last else len(rows)
        return rows[lo:hi][::-1]


class ReplayServer:
    def __init__(self, tables: dict[str, pd.DataFrame], token: str,
                 caps: dict[str, int] | None = None, charset: str = "utf-8",
                 declare_charset: bool = True, slow_s: float = 2.0, has_more: bool = True):
        self.tables = dict(tables)
        self.token = token
        self.charset = charset
        self.declare_charset = declare_charset
        self.slow_s = slow_s
        self.has_more = has_more
        self.caps = {name: iface.rows_per_call for name, iface in CATALOGUE.items()}
        self.caps.update(caps or {})
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, dict]] = []
        self._served: dict[str, tuple[pd.DataFrame, _ServedTable]] = {}
        # [api or None, fault, matching calls still to let through, params to match]
        self._faults: list[list] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/dataapi"

    def __enter__(self) -> "ReplayServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def inject(self, fault: str, times: int = 1, api: str | None = None, after: int = 0,
               where: dict | None = None) -> None:
        """Let ``after`` calls (to ``api``, or to any; with parameters holding ``where``)
        through, then answer ``times`` of them with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; faults are {', '.join(FAULTS)}")
        where = where or {}
        with self._lock:
            self._faults.append([api, fault, after, where])
            self._faults.extend([api, fault, 0, where] for _ in range(times - 1))

    def add_rows(self, name: str, rows: pd.DataFrame) -> None:
        with self._lock:
            self.tables[name] = pd.concat([self.tables.get(name), rows], ignore_index=True)

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    def _take_fault(self, api: str, params: dict) -> str | None:
        with self._lock:
            for i, (target, fault, wait, where) in enumerate(self._faults):
                if target in (None, api) and all(params.get(k) == v for k, v in where.items()):
                    if wait:
                        self._faults[i][2] -= 1
                        return None
                    del self._faults[i]
                    return fault
        return None

    def answer(self, api: str, token: str, params: dict, fields: str) -> dict:
        if token != self.token:
            return {"code": 2002, "msg": BAD_TOKEN_REPLY, "data": None}
        # an interface that fills two tables (fina_mainbz's `type`) answers from the table
        # whose fixed parameters the request carries, else from the table of its name
        iface = next((i for i in tables_of_api(api) if i.fixed_params and all(
            str(params.get(k)) == str(v) for k, v in i.fixed_params.items())), CATALOGUE.get(api))
        if iface is None:
            return {"code": 40101, "msg": "请指定正确的接口名", "data": None}
        served = self._served_table(iface)
        if served is None:
            return {"code": 0, "msg": "", "data": {"fields": list(iface.keys), "items": [],
                                                   "has_more": False}}
        subject_value = params.get(iface.subject_param) if iface.subject else None
        subjects = str(subject_value).split(",") if subject_value else None
        # trade_date=D asks for the range D..D, narrowed further by start/end when given
        days = [params[p] for p in {"trade_date", iface.day_param} & params.keys() if params[p]]
        first = max(filter(None, [*days, params.get("start_date")]), default=None)
        last = min(filter(None, [*days, params.get("end_date")]), default=None)
        rows = served.rows(subjects, first, last)
        offset = int(params.get("offset") or 0)
        limit = min(int(params.get("limit") or self.caps[iface.name]), self.caps[iface.name])
        table = served.table.iloc[rows[offset:offset + limit]]
        if fields:
            table = table[[f.strip() for f in fields.split(",") if f.strip() in table.columns]]
        items = table.astype(object).where(table.notna(), None).values.tolist()
        return {"code": 0, "msg": "", "data": {"fields": list(table.columns), "items": items,
                                               "has_more": offset + len(items) < len(rows)}}

    def _served_table(self, iface: Interface) -> _ServedTable | None:
        """The indexed form of ``self.tables[iface.name]``, rebuilt whenever that table changes."""
        with self._lock:
            table = self.tables.get(iface.name)
            if table is None:
                return None
            cached = self._served.get(iface.name)
            if cached is None or cached[0] is not table:
                cached = self._served[iface.name] = (table, _ServedTable(table, iface))
            return cached[1]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api = self.path.rstrip("/").rsplit("/", 1)[-1]
                params = {k: v for k, v in (body.get("params") or {}).items()
                          if k != "ts_type_name"}
                with server._lock:
                    server.calls[api] += 1
                    server.requests.append((api, params))
                fault = server._take_fault(api, params)
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "slow":
                    time.sleep(server.slow_s)
                if fault == "http500":
                    self._send(500, b'{"error": "internal"}')
                    return
                if fault in FAULT_REPLIES:
                    code, msg = FAULT_REPLIES[fault]
                    reply = {"code": code, "msg": msg.format(api=api), "data": None}
                else:
                    reply = server.answer(api, body.get("token", ""), params,
                                          body.get("fields") or "")
                    if fault == "empty" and reply["data"]:
                        reply["data"].update(items=[], has_more=False)
                    if not server.has_more and reply["data"]:
                        del reply["data"]["has_more"]
                self._send(200, json.dumps(reply, ensure_ascii=False).encode(server.charset))

            def _send(self, status: int, payload: bytes):
                kind = "application/json"
                if server.declare_charset:
                    kind += f"; charset={server.charset}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # a client that gave up on a slow reply; nobody is left to answer
                    self.close_connection = True

        return Handler
