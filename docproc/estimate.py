"""What summarising a set of documents would cost, before anything is sent.

Input tokens are counted per request as the provider would receive it: the
shared prefix (system prompt and tool definition, the same in every request)
plus the document (its title and text, cut to ``max_input_chars``). Locally
that is one token per :data:`~docproc.costs.BYTES_PER_TOKEN` bytes of UTF-8,
which leans high for English prose (about 4 bytes a token) and is close for
code and non-Latin scripts; ``exact`` asks the provider's token-counting
endpoint instead (Anthropic's ``count_tokens``: free, rate-limited), one call
per document and one for the prefix.

Output tokens: the mean of what this model answered before, from the ledger,
once it has answered a few; until then ``max_tokens`` for every document (a
ceiling, also what the budget reserves: ``max_batch_usd``).

Dollars: at the batch price (what docproc pays) and at the live price (what
the same calls would cost one by one), every input token billed as plain
input; the prompt-cache saving is what the cache takes off the batch price
if every request after the first reads the shared prefix from it, which
happens only when the prefix reaches the model's minimum cacheable length
(hits in batches are best-effort: 30 to 98% by Anthropic's account).

Documents already summarised under the task cost nothing and are counted
apart, as are those that could not be read (no text to send).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from docproc.costs import BYTES_PER_TOKEN, PriceTable
from docproc.errors import DocprocError, ProviderRetryable
from docproc.ledger.selection import Selected
from docproc.models import JobRequest, TaskSpec, Usage
from docproc.providers.base import Provider, TokenCounter, request_size
from docproc.textstore import TextStore

HISTORY_MIN = 5  # answers by a model before their mean stands for the next ones
COUNT_ATTEMPTS = 5  # a rate-limited token count is tried this many times
_EMPTY = JobRequest("j0-a0", 0, "", "")
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Estimate:
    """The cost of summarising a selection (see the module docstring)."""

    provider: str
    model: str
    task: str
    documents: int  # to be sent (including any already queued or in a batch)
    in_flight: int  # of those, already queued or in a batch
    already_summarised: int  # under this task: cost nothing
    unreadable: int  # no text (extraction failed or not done): nothing to send
    input_tokens: int
    output_tokens: int
    output_basis: str
    prefix_tokens: int  # the shared system prompt and tool, in every request
    cacheable: bool  # the prefix reaches the model's minimum cacheable length
    batch_usd: float
    live_usd: float
    cache_saving_usd: float
    max_batch_usd: float  # every answer at max_tokens: what the budget reserves
    exact: bool  # input tokens counted by the provider

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(
    selected: Sequence[Selected],
    *,
    task: TaskSpec,
    provider: Provider,
    prices: PriceTable,
    history: tuple[int, float] = (0, 0.0),
    store: TextStore | None = None,
    exact: bool = False,
    progress: Progress | None = None,
) -> Estimate:
    """Price the versions in ``selected`` under ``task``.

    Args:
        selected: the versions (:class:`~docproc.ledger.selection.Selected`).
        task: the task they would be summarised under (model, prompt, limits).
        provider: builds the requests (and counts their tokens with ``exact``).
        prices: the price table.
        history: (answers, mean output tokens) of the model so far.
        store: the extracted texts (needed with ``exact``).
        exact: ask the provider's token-counting endpoint.
        progress: called with (done, total) while counting exactly.

    Raises:
        DocprocError: ``exact`` with a provider that cannot count tokens, or a
            count that failed.
    """
    to_send = [s for s in selected if not s.summarised and s.state == "extracted" and s.text_sha256]
    unreadable = sum(1 for s in selected if not s.summarised) - len(to_send)
    counter = _counter(provider) if exact else None
    if counter is not None and store is not None:
        prefix, docs = _exact_tokens(to_send, task, provider, counter, store, progress)
    else:
        prefix = _tokens(request_size(provider.build_request(_EMPTY, task)))
        docs = [_local_tokens(s, task) for s in to_send]
    count, output_each, basis = len(to_send), *_output(task, history)
    input_tokens = sum(docs) + prefix * count
    output_tokens = count * output_each
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    price = prices.prices.get(task.model)
    cacheable = price is not None and prefix >= price.cache_min_tokens
    batch = prices.cost(task.model, usage) or 0.0
    cached = Usage(input_tokens=input_tokens - prefix * count, output_tokens=output_tokens,
                   cache_creation_input_tokens=prefix if count else 0,
                   cache_read_input_tokens=prefix * max(0, count - 1))  # fmt: skip
    saving = batch - (prices.cost(task.model, cached) or 0.0) if cacheable and count else 0.0
    ceiling = Usage(input_tokens=input_tokens, output_tokens=count * task.max_tokens)
    return Estimate(
        provider=provider.name, model=task.model, task=task.fingerprint, documents=count,
        in_flight=sum(1 for s in to_send if s.in_flight),
        already_summarised=sum(1 for s in selected if s.summarised), unreadable=unreadable,
        input_tokens=input_tokens, output_tokens=output_tokens, output_basis=basis,
        prefix_tokens=prefix, cacheable=cacheable, batch_usd=batch,
        live_usd=prices.cost(task.model, usage, batch=False) or 0.0, cache_saving_usd=saving,
        max_batch_usd=prices.cost(task.model, ceiling) or 0.0, exact=counter is not None,
    )  # fmt: skip


def _tokens(nbytes: float) -> int:
    return math.ceil(nbytes / BYTES_PER_TOKEN)


def _local_tokens(item: Selected, task: TaskSpec) -> int:
    """The document's part of a request: its text (cut as it would be) and title."""
    text_bytes = item.json_bytes if item.json_bytes is not None else item.chars
    if item.chars > task.max_input_chars:
        text_bytes = math.ceil(text_bytes * task.max_input_chars / item.chars) + 120  # + marker
    return _tokens(text_bytes + len(item.title.encode("utf-8", "replace")))


def _output(task: TaskSpec, history: tuple[int, float]) -> tuple[int, str]:
    answers, mean = history
    if answers >= HISTORY_MIN:
        each = min(task.max_tokens, math.ceil(mean))
        return each, f"mean of {answers} answers by {task.model}"
    return task.max_tokens, "max_tokens (a ceiling: too few answers by this model yet)"


def _counter(provider: Provider) -> TokenCounter:
    if not isinstance(provider, TokenCounter):
        raise DocprocError(
            f"provider {provider.name!r} has no token-counting endpoint; drop --exact for the"
            " local estimate"
        )
    return provider


def _exact_tokens(
    items: Sequence[Selected],
    task: TaskSpec,
    provider: Provider,
    counter: TokenCounter,
    store: TextStore,
    progress: Progress | None,
) -> tuple[int, list[int]]:
    """(prefix tokens, document tokens each) as the provider counts them."""
    prefix = _count(counter, provider.build_request(_EMPTY, task))
    counts = []
    for done, item in enumerate(items, 1):
        try:
            text = store.get(str(item.text_sha256))
        except FileNotFoundError:
            raise DocprocError(f"the text of version {item.sha256[:12]} was pruned") from None
        request = provider.build_request(JobRequest("j0-a0", 0, text, item.title), task)
        counts.append(max(0, _count(counter, request) - prefix))
        if progress is not None:
            progress(done, len(items))
    return prefix, counts


def _count(counter: TokenCounter, request: dict[str, Any]) -> int:
    """One count, waiting out rate limits (bounded)."""
    for attempt in range(COUNT_ATTEMPTS):
        try:
            return counter.count_tokens(request)
        except ProviderRetryable as exc:
            if attempt == COUNT_ATTEMPTS - 1:
                raise DocprocError(f"token counting failed: {exc}") from exc
            time.sleep(min(30.0, exc.retry_after or 2.0 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover
