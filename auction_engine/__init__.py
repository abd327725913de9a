"""A real-time reverse-auction engine for public procurement: the sans-IO core.

`Engine.handle(command) -> events` is the whole contract; see docs/core.md.
"""

from .commands import (
    AdmitBidder,
    Cancel,
    Command,
    CreateAuction,
    PlaceBid,
    Resume,
    RevokeBidder,
    Suspend,
    Tick,
)
from .config import AuctionConfig, BidRules, ConfigError, ExtensionPolicy, LotConfig
from .engine import Engine, QueryError
from .events import COMMAND_REJECTION_CODES, REJECTION_CODES, Event
from .kind import ClockRegression
from .money import MoneyError, format_amount, parse_amount

__all__ = [
    "AdmitBidder", "AuctionConfig", "BidRules", "COMMAND_REJECTION_CODES", "Cancel", "ClockRegression", "Command",
    "ConfigError", "CreateAuction", "Engine", "Event", "ExtensionPolicy", "LotConfig", "MoneyError",
    "PlaceBid", "QueryError", "REJECTION_CODES", "Resume", "RevokeBidder", "Suspend", "Tick",
    "format_amount", "parse_amount",
]
__version__ = "0.1.0"
