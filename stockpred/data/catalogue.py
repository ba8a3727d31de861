"""The tushare Pro interfaces stockpred knows, each declared once.

This module is the data contract of the raw store: for every interface it says
which columns identify a row, which date drives incremental fetching, how the
interface can be queried and how many rows one call returns at most. Column names
and units are tushare's own (``vol`` in lots of 100 shares, ``amount`` in
thousand CNY, ``daily_basic`` shares in 10k shares and market values in 10k CNY).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Columns that stay text whatever their values look like (codes, dates, labels).
TEXT_COLUMNS = frozenset({
    "ts_code", "symbol", "name", "area", "industry", "market", "exchange", "list_status",
    "list_date", "delist_date", "is_hs", "fullname", "enname", "curr_type",
    "trade_date", "cal_date", "pretrade_date", "ann_date", "f_ann_date", "end_date",
    "report_type", "comp_type", "end_type", "update_flag", "type", "div_proc",
    "record_date", "ex_date", "pay_date", "div_listdate", "imp_ann_date", "base_date",
    "audit_result", "audit_agency", "audit_sign", "bz_item", "bz_code",
    "date", "datetime", "trade_time", "title", "content", "channels", "src", "company",
    "url", "index_code", "con_code", "publisher", "category", "proc", "exp_date",
    "float_date", "holder_name", "holder_type", "share_type", "in_de", "begin_date",
    "close_date", "buyer", "seller", "exchange_id", "broker", "warehouse",
    "area_name", "fut_name", "unit", "bank", "name_en",
})


@dataclass(frozen=True)
class Interface:
    """One tushare Pro interface.

    ``subject`` names what one call is about (a stock, an index, a news source...)
    and the query parameter that carries it; ``None`` means a market-wide table.
    ``date_field`` is the column that start/end ranges filter and that incremental
    fetching follows; ``range_query`` says whether the interface accepts
    ``start_date``/``end_date`` at all (some only return the whole history of a
    subject). ``by_trade_date`` marks interfaces that answer ``trade_date=D`` for the
    whole market (through ``day_param``), which makes a nightly refresh one call per
    trading day; ``calendar_days`` marks the few that publish on every calendar day.
    ``partition`` is how the raw store splits the table into files; ``market_partition``
    the time layout ("year", or "month" for minute bars) that a per-subject table moves
    to once it holds a market-scale universe (see stockpred.data.store).
    """

    name: str
    group: str
    keys: tuple[str, ...]
    date_field: str | None
    subject: str | None = None
    subject_param: str = "ts_code"
    range_query: bool = True
    by_trade_date: bool = False
    day_param: str = "trade_date"
    calendar_days: bool = False
    rows_per_call: int = 6000
    partition: str | None = None  # "subject", "year", "subject_year" or None (one file)
    market_partition: str | None = None  # "year" or "month"; None: the table keeps its files
    datetime_params: bool = False  # start/end sent as 'YYYY-MM-DD HH:MM:SS'
    fixed_params: dict = field(default_factory=dict)
    publication_lag_days: int = 0  # a day's rows can appear this many days after it
    derived_from: tuple[str, ...] = ()  # computed locally from these interfaces
    # a row for every trading stock on every open day (bars, their factors, indicators)
    dense: bool = False
    # the tushare interface asked, when it differs from the table's name: one interface can
    # fill two tables that ``fixed_params`` tell apart (fina_mainbz by product and by region)
    api_name: str | None = None

    @property
    def api(self) -> str:
        return self.api_name or self.name

    @property
    def text_columns(self) -> frozenset[str]:
        return TEXT_COLUMNS | ({self.date_field} if self.date_field else set())

    @property
    def queryable(self) -> bool:
        return not self.derived_from

    def rows_expected(self, whole_market: bool) -> bool:
        """Whether a reply over open days must hold rows, so that an empty one proves
        nothing (a glitch of the server looks the same): a day of the whole market of a
        table published every open day, or a stock's range of a dense table. A stock
        suspended for the whole range is told from a glitch by asking twice."""
        if whole_market:
            return self.by_trade_date and not self.calendar_days
        return self.dense


def _stock(name, group, keys, date_field, **kw):
    kw.setdefault("partition", "subject")
    kw.setdefault("market_partition", "year")
    return Interface(name, group, keys, date_field, subject="stock", **kw)


def _market(name, group, keys, date_field, **kw):
    kw.setdefault("partition", "year")
    return Interface(name, group, keys, date_field, **kw)


# The group of the interfaces fetched only when named (`stockpred fetch --only NAME`, or
# fetch.interfaces): it is not one of GROUPS, so no configured group, default or not, asks them.
ON_REQUEST = "on_request"


@dataclass(frozen=True)
class OnRequest(Interface):
    """An interface of the ``on_request`` group. Its key columns, and the columns of
    ``text`` (codes, dates and flags that look like numbers), stay text beside TEXT_COLUMNS."""

    text: frozenset[str] = frozenset()

    @property
    def text_columns(self) -> frozenset[str]:
        return super().text_columns | set(self.keys) | self.text


def _on_request(name, keys, date_field, text=(), **kw):
    return OnRequest(name, ON_REQUEST, keys, date_field, text=frozenset(text), **kw)


def _on_request_stock(name, keys, date_field, text=(), **kw):
    kw.setdefault("partition", "subject")
    kw.setdefault("market_partition", "year")
    return _on_request(name, keys, date_field, text, subject="stock", **kw)


_ANNOUNCED = ("ts_code", "ann_date", "end_date")

INTERFACES: tuple[Interface, ...] = (
    # stock data
    Interface("stock_basic", "stock", ("ts_code",), None, range_query=False,
              fixed_params={"list_status": "L"}),
    Interface("trade_cal", "stock", ("exchange", "cal_date"), "cal_date", rows_per_call=10000,
              fixed_params={"exchange": "SSE"}),
    _stock("daily", "stock", ("ts_code", "trade_date"), "trade_date", by_trade_date=True,
           dense=True),
    _stock("daily_basic", "stock", ("ts_code", "trade_date"), "trade_date", by_trade_date=True,
           dense=True),
    _stock("moneyflow", "stock", ("ts_code", "trade_date"), "trade_date", by_trade_date=True,
           dense=True),
    _stock("adj_factor", "stock", ("ts_code", "trade_date"), "trade_date", by_trade_date=True,
           dense=True),
    _stock("qfq_daily", "stock", ("ts_code", "trade_date"), "trade_date",
           derived_from=("daily", "adj_factor")),
    _stock("hfq_daily", "stock", ("ts_code", "trade_date"), "trade_date",
           derived_from=("daily", "adj_factor")),
    # financial statements, visible from their announcement date
    _stock("income", "finance", ("ts_code", "ann_date", "f_ann_date", "end_date", "report_type"),
           "ann_date"),
    _stock("balancesheet", "finance",
           ("ts_code", "ann_date", "f_ann_date", "end_date", "report_type"), "ann_date"),
    _stock("cashflow", "finance", ("ts_code", "ann_date", "f_ann_date", "end_date", "report_type"),
           "ann_date"),
    _stock("forecast", "finance", _ANNOUNCED, "ann_date"),
    _stock("express", "finance", _ANNOUNCED, "ann_date"),
    _stock("dividend", "finance", ("ts_code", "end_date", "ann_date", "div_proc"), "ann_date",
           range_query=False),
    _stock("fina_indicator", "finance", _ANNOUNCED, "ann_date", rows_per_call=100),
    _stock("fina_audit", "finance", _ANNOUNCED, "ann_date"),
    _stock("fina_mainbz", "finance", ("ts_code", "end_date", "bz_item"), "end_date",
           rows_per_call=100, fixed_params={"type": "P"}),
    _stock("fina_mainbz_region", "finance", ("ts_code", "end_date", "bz_item"), "end_date",
           rows_per_call=100, fixed_params={"type": "D"}, api_name="fina_mainbz"),
    # market
    _market("moneyflow_hsgt", "market", ("trade_date",), "trade_date", rows_per_call=300),
    _market("margin", "market", ("trade_date", "exchange_id"), "trade_date", rows_per_call=4000,
            publication_lag_days=1),  # the exchanges publish a day's margin the next morning
    _stock("pledge_stat", "market", ("ts_code", "end_date"), "end_date", range_query=False,
           rows_per_call=1000),
    _market("repurchase", "market", ("ts_code", "ann_date", "proc", "end_date"), "ann_date",
            rows_per_call=2000),
    _stock("share_float", "market", ("ts_code", "ann_date", "float_date", "holder_name",
                                     "share_type"), "ann_date"),
    _stock("block_trade", "market", ("ts_code", "trade_date", "price", "vol", "buyer", "seller"),
           "trade_date", rows_per_call=1000),
    _stock("stk_holdertrade", "market", ("ts_code", "ann_date", "holder_name", "in_de",
                                         "change_vol"), "ann_date", rows_per_call=3000),
    # index
    Interface("index_basic", "index", ("ts_code",), None, range_query=False,
              fixed_params={"market": "SSE"}),
    Interface("index_daily", "index", ("ts_code", "trade_date"), "trade_date", subject="index",
              rows_per_call=8000, partition="subject"),
    Interface("index_weight", "index", ("index_code", "con_code", "trade_date"), "trade_date",
              subject="index", subject_param="index_code", partition="subject"),
    # futures
    Interface("fut_daily", "futures", ("ts_code", "trade_date"), "trade_date", subject="future",
              rows_per_call=2000, partition="subject"),
    _market("fut_holding", "futures", ("trade_date", "symbol", "broker", "exchange"),
            "trade_date", rows_per_call=5000, by_trade_date=True, range_query=False),
    _market("fut_wsr", "futures", ("trade_date", "symbol", "warehouse", "exchange"),
            "trade_date", rows_per_call=1000, by_trade_date=True, range_query=False),
    # rates
    _market("shibor", "rates", ("date",), "date", rows_per_call=2000),
    _market("shibor_quote", "rates", ("date", "bank"), "date", rows_per_call=4000),
    _market("shibor_lpr", "rates", ("date",), "date", rows_per_call=4000),
    _market("libor", "rates", ("date", "curr_type"), "date", rows_per_call=4000,
            fixed_params={"curr_type": "USD"}),
    _market("hibor", "rates", ("date",), "date", rows_per_call=4000),
    _market("wz_index", "rates", ("date",), "date", rows_per_call=1000),
    _market("gz_index", "rates", ("date",), "date", rows_per_call=1000),
    # news
    Interface("news", "news", ("src", "datetime", "title"), "datetime", subject="news_src",
              subject_param="src", rows_per_call=1500, partition="subject_year",
              datetime_params=True),
    _stock("anns", "news", ("ts_code", "ann_date", "title"), "ann_date", rows_per_call=50),
    _market("cctv_news", "news", ("date", "title"), "date", by_trade_date=True,
            range_query=False, rows_per_call=200, day_param="date", calendar_days=True),
    # 1-minute bars
    Interface("stk_mins", "minutes", ("ts_code", "trade_time"), "trade_time", subject="minute",
              rows_per_call=8000, partition="subject_year", market_partition="month",
              datetime_params=True, fixed_params={"freq": "1min"}),
    # on request only (group on_request): `stockpred fetch --only NAME`
    _on_request("index_dailybasic", ("ts_code", "trade_date"), "trade_date", subject="index",
                rows_per_call=3000, partition="subject"),
    _on_request("fx_daily", ("ts_code", "trade_date"), "trade_date", rows_per_call=1000,
                partition="year"),
    _on_request("opt_basic", ("ts_code",), None, range_query=False,
                fixed_params={"exchange": "SSE"},
                text=("opt_code", "opt_type", "call_put", "exercise_type", "s_month",
                      "maturity_date", "last_edate", "last_ddate", "quote_unit")),
    _on_request("opt_daily", ("ts_code", "trade_date"), "trade_date", by_trade_date=True,
                range_query=False, partition="year", fixed_params={"exchange": "SSE"}),
    _on_request("fut_basic", ("ts_code",), None, range_query=False,
                fixed_params={"exchange": "CFFEX"},
                text=("fut_code", "quote_unit", "quote_unit_desc", "d_mode_desc", "d_month",
                      "last_ddate", "trade_time_desc")),
    _on_request("fut_settle", ("ts_code", "trade_date"), "trade_date", subject="future",
                rows_per_call=1000, partition="subject"),
    # holders by report period (start/end_date ask end_date); a period's lists are published
    # up to four months after it (annual reports by 30 April), so those months are asked again
    _on_request_stock("top10_holders", ("ts_code", "ann_date", "end_date", "holder_name"),
                      "end_date", publication_lag_days=121, text=("holder_type",)),
    _on_request_stock("top10_floatholders", ("ts_code", "ann_date", "end_date", "holder_name"),
                      "end_date", publication_lag_days=121, text=("holder_type",)),
    _on_request("top_list", ("trade_date", "ts_code", "reason"), "trade_date",
                by_trade_date=True, range_query=False, rows_per_call=10000, partition="year"),
    _on_request("top_inst", ("trade_date", "ts_code", "exalter", "side", "reason"),
                "trade_date", by_trade_date=True, range_query=False, rows_per_call=10000,
                partition="year"),
    _on_request("concept", ("code",), None, range_query=False),
    _on_request_stock("concept_detail", ("id", "ts_code"), "in_date", range_query=False,
                      market_partition=None, text=("concept_name", "out_date")),
    _on_request_stock("stk_holdernumber", ("ts_code", "ann_date", "end_date"), "ann_date",
                      rows_per_call=3000),
    _on_request("stk_account", ("date",), "date", partition="year"),
    _on_request("hsgt_top10", ("trade_date", "ts_code"), "trade_date", partition="year",
                text=("market_type",)),
    _on_request("ggt_top10", ("trade_date", "ts_code", "market_type"), "trade_date",
                partition="year"),
    _on_request_stock("margin_detail", ("ts_code", "trade_date"), "trade_date",
                      by_trade_date=True, publication_lag_days=1),
    _on_request_stock("pledge_detail", ("ts_code", "ann_date", "holder_name", "start_date",
                                        "pledgor"), "ann_date", range_query=False,
                      rows_per_call=1000, text=("release_date",)),
)

CATALOGUE: dict[str, Interface] = {i.name: i for i in INTERFACES}


def tables_of_api(api: str) -> list[Interface]:
    """The tables that tushare interface ``api`` fills (most: the one of its name)."""
    return [i for i in INTERFACES if i.api == api]
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(i.group for i in INTERFACES))
GROUPS = tuple(g for g in GROUPS if g != ON_REQUEST)  # named only, never a configured group


def interface(name: str) -> Interface:
    return CATALOGUE[name]
