"""What tokens cost: a price table, batch discount and prompt-cache multipliers.

Prices are list prices in US dollars per million tokens; a batch request is
billed at ``batch_discount`` of them (Anthropic: 50%). Cache writes with the
1-hour TTL cost ``cache_write`` times the input price, cache reads
``cache_read`` times it (reference/BATCH_APIS.md §1.10). Errored, canceled
and expired requests report no usage and cost nothing.

Pure functions over frozen values: the ledger stores the cost of each request
when its result arrives, so a later price change never rewrites history.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from docproc.models import Usage

MILLION = 1_000_000
BYTES_PER_TOKEN = 3.0  # a cautious guess for estimates: fewer bytes per token costs more


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """List prices, USD per million tokens, and the shortest prefix the model caches."""

    input: float
    output: float
    cache_min_tokens: int = 1024  # a shorter cached prefix is billed as plain input


# Defaults for the models docproc suggests; any other model needs a
# [prices."model"] entry. Local summaries are free.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "local-extractive-1": ModelPrice(0.0, 0.0),
    "claude-haiku-4-5": ModelPrice(1.0, 5.0, cache_min_tokens=4096),
    "claude-sonnet-4-5": ModelPrice(3.0, 15.0, cache_min_tokens=1024),
    "claude-opus-4-5": ModelPrice(5.0, 25.0, cache_min_tokens=4096),
}


@dataclass(frozen=True, slots=True)
class PriceTable:
    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    batch_discount: float = 0.5
    cache_write: float = 2.0  # 1-hour TTL writes
    cache_read: float = 0.1

    def knows(self, model: str) -> bool:
        return self.price(model) is not None

    def price(self, model: str) -> ModelPrice | None:
        """The model's list price: its own entry, else the entry of its base name
        (:func:`base_model`), so Bedrock ids and dated ids share a default."""
        found = self.prices.get(model)
        return found if found is not None else self.prices.get(base_model(model))

    def cost(self, model: str, usage: Usage, *, batch: bool = True) -> float | None:
        """Dollars billed for one request (a batch request, or ``batch=False``: a live
        call at list price); None for a model without a price."""
        price = self.price(model)
        if price is None:
            return None
        share = self.batch_discount if batch else 1.0
        per_input = price.input * share / MILLION
        per_output = price.output * share / MILLION
        return (
            usage.input_tokens * per_input
            + usage.cache_creation_input_tokens * per_input * self.cache_write
            + usage.cache_read_input_tokens * per_input * self.cache_read
            + usage.output_tokens * per_output
        )

    def estimate(
        self, model: str, request_bytes: int, requests: int, max_tokens: int, *, live: bool = False
    ) -> float:
        """An upper-leaning estimate for a batch before it is sent: every input byte
        billed as uncached input at ``BYTES_PER_TOKEN``, every answer at ``max_tokens``.
        A model without a price estimates at 0 (the configuration refuses a budget then).
        """
        input_tokens = int(request_bytes / BYTES_PER_TOKEN)
        usage = Usage(input_tokens=input_tokens, output_tokens=requests * max_tokens)
        return self.cost(model, usage, batch=not live) or 0.0


@dataclass(frozen=True, slots=True)
class Budget:
    """Spending caps in dollars; 0 means no cap."""

    daily_usd: float = 0.0
    monthly_usd: float = 0.0

    @property
    def capped(self) -> bool:
        return self.daily_usd > 0 or self.monthly_usd > 0

    def refusal(self, today: float, month: float, estimate: float) -> str | None:
        """Why a batch estimated at ``estimate`` may not be sent, or None if it may.

        ``today`` and ``month`` are what was spent (and reserved by batches in
        flight) in the current UTC day and month.
        """
        caps = (("daily", self.daily_usd, today), ("monthly", self.monthly_usd, month))
        for name, cap, spent in caps:
            if cap > 0 and spent + estimate > cap:
                return (
                    f"{name} budget: ${spent:.2f} spent or reserved + ${estimate:.2f} for the"
                    f" next batch would cross the cap of ${cap:.2f}"
                )
        return None


@functools.lru_cache(maxsize=256)
def base_model(model: str) -> str:
    """The model a platform's id names, as priced in the table::

        anthropic.claude-sonnet-4-5-20250929-v1:0           -> claude-sonnet-4-5
        us.anthropic.claude-haiku-4-5-20251001-v1:0         -> claude-haiku-4-5
        arn:aws:bedrock:...:inference-profile/eu.anthropic.claude-opus-4-5-...-v1:0
                                                            -> claude-opus-4-5
        claude-sonnet-4-5@20250929 (Vertex), claude-sonnet-4-5-20250929 -> claude-sonnet-4-5
        publishers/anthropic/models/claude-haiku-4-5@20251001 -> claude-haiku-4-5

    An id it cannot read (an application inference profile's opaque ARN) comes
    back unchanged: it needs its own ``[costs.models]`` entry.
    """
    name = model.rsplit("/", 1)[-1] if model.startswith(("arn:", "publishers/")) else model
    name = _GEO_PREFIX.sub("", name)
    name = name.removeprefix("anthropic.")
    name = _VERSION_SUFFIX.sub("", name)
    return _DATE_SUFFIX.sub("", name)


# Bedrock's cross-region inference profiles prefix a geography; ids end in a version.
_GEO_PREFIX = re.compile(r"^(?:us|eu|apac|ap|jp|au|ca|us-gov|global)\.(?=anthropic\.)")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_DATE_SUFFIX = re.compile(r"[-@]\d{8}$")


def period_starts(epoch: float) -> tuple[str, str]:
    """ISO times (as the ledger writes them) of the start of the UTC day and month."""
    day = datetime.fromtimestamp(epoch, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    return day.isoformat(timespec="microseconds"), month.isoformat(timespec="microseconds")
