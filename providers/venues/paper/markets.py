"""The pairs the paper venue lists: trading limits, a realistic starting price for the walk,
and how volatile each pair is relative to the configured ``volatility_bps``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from providers.base import Market, MarketCategory


@dataclass(frozen=True)
class PaperPair:
    market: Market
    seed_price: Decimal
    # ``volatility_bps`` is the step of the crypto majors; calmer markets move by this share of it
    # (roughly the ratio of their real volatility to bitcoin's).
    volatility_scale: Decimal

    @property
    def symbol(self) -> str:
        return self.market.symbol


_ROWS: dict[MarketCategory, tuple[str, tuple[tuple[str, str, str, str, str, str], ...]]] = {
    # category: (min collateral, rows of (symbol, seed price, tick size, size step, max leverage,
    # volatility scale))
    MarketCategory.CRYPTO: (
        "5",
        (
            ("BTCUSD", "64000.0", "0.1", "0.0001", "50", "1"),
            ("ETHUSD", "3400.00", "0.01", "0.001", "50", "1.2"),
            ("SOLUSD", "150.000", "0.001", "0.01", "20", "1.6"),
            ("BNBUSD", "580.00", "0.01", "0.01", "20", "1.2"),
            ("XRPUSD", "0.52000", "0.00001", "1", "20", "1.5"),
            ("DOGEUSD", "0.120000", "0.000001", "1", "20", "1.8"),
            ("ADAUSD", "0.45000", "0.00001", "1", "20", "1.6"),
            ("AVAXUSD", "28.000", "0.001", "0.01", "20", "1.7"),
            ("LINKUSD", "14.000", "0.001", "0.1", "20", "1.6"),
            ("LTCUSD", "72.00", "0.01", "0.01", "20", "1.4"),
        ),
    ),
    MarketCategory.FOREX: (
        "10",
        (
            ("EURUSD", "1.08500", "0.00001", "1", "100", "0.15"),
            ("GBPUSD", "1.27000", "0.00001", "1", "100", "0.17"),
            ("USDJPY", "151.500", "0.001", "1", "100", "0.18"),
            ("AUDUSD", "0.66000", "0.00001", "1", "100", "0.2"),
            ("USDCHF", "0.88000", "0.00001", "1", "100", "0.16"),
            ("USDCAD", "1.36000", "0.00001", "1", "100", "0.13"),
            ("NZDUSD", "0.61000", "0.00001", "1", "100", "0.2"),
        ),
    ),
    MarketCategory.INDICES: (
        "10",
        (
            ("SPX", "5200.00", "0.01", "0.001", "50", "0.3"),
            ("NDX", "18200.00", "0.01", "0.001", "50", "0.38"),
            ("DJI", "39000.0", "0.1", "0.001", "50", "0.27"),
            ("DAX", "18000.0", "0.1", "0.001", "50", "0.3"),
            ("FTSE", "8000.0", "0.1", "0.001", "50", "0.25"),
            ("NIK", "38500", "1", "0.001", "50", "0.35"),
        ),
    ),
    MarketCategory.COMMODITIES: (
        "10",
        (
            ("XAUUSD", "2350.00", "0.01", "0.001", "100", "0.3"),
            ("XAGUSD", "28.000", "0.001", "0.1", "50", "0.55"),
            ("WTIUSD", "78.00", "0.01", "0.01", "50", "0.6"),
            ("BRENTUSD", "82.00", "0.01", "0.01", "50", "0.55"),
            ("XPTUSD", "980.00", "0.01", "0.01", "50", "0.5"),
            ("XCUUSD", "4.5000", "0.0001", "1", "50", "0.45"),
        ),
    ),
}

PAPER_PAIRS: tuple[PaperPair, ...] = tuple(
    PaperPair(
        market=Market(
            symbol=symbol,
            venue_symbol=symbol,
            category=category,
            tick_size=Decimal(tick),
            size_step=Decimal(step),
            min_collateral=Decimal(min_collateral),
            max_leverage=Decimal(max_leverage),
        ),
        seed_price=Decimal(seed),
        volatility_scale=Decimal(volatility),
    )
    for category, (min_collateral, rows) in _ROWS.items()
    for symbol, seed, tick, step, max_leverage, volatility in rows
)

PAPER_PAIRS_BY_SYMBOL: dict[str, PaperPair] = {pair.symbol: pair for pair in PAPER_PAIRS}


def paper_pair(symbol: str) -> PaperPair | None:
    return PAPER_PAIRS_BY_SYMBOL.get(symbol)
