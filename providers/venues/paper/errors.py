from __future__ import annotations

from marqetfi.core.errors import ApplicationError, ConflictError


class PaperVenueDisabled(ConflictError):
    code = "paper_venue_disabled"
    default_message = "The paper venue is switched off."


class UnknownPaperSymbol(ApplicationError):
    code = "unknown_symbol"
    status_code = 400
    default_message = "The paper venue does not list this symbol."


class InvalidPaperPrice(ApplicationError):
    code = "invalid_price"
    status_code = 400
    default_message = "The price must be positive on the pair's tick."
