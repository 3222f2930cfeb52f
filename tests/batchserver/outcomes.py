"""What each request of a test batch ends as: :class:`Outcome` and :func:`outcome_mix`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What one request ends as. The last three are ``succeeded`` at API level."""

    SUCCEEDED = "succeeded"
    ERRORED = "errored"  # api_error or overloaded_error: retry as is
    INVALID = "invalid"  # errored with invalid_request_error: fix before resending
    EXPIRED = "expired"
    CANCELED = "canceled"
    MAX_TOKENS = "max_tokens"  # stop_reason max_tokens, tool input truncated
    REFUSAL = "refusal"  # stop_reason refusal, a text block and no tool_use
    BAD_TOOL_INPUT = "bad_tool_input"  # stop_reason tool_use, input breaks the schema


RESULT_TYPE = {
    Outcome.SUCCEEDED: "succeeded",
    Outcome.MAX_TOKENS: "succeeded",
    Outcome.REFUSAL: "succeeded",
    Outcome.BAD_TOOL_INPUT: "succeeded",
    Outcome.ERRORED: "errored",
    Outcome.INVALID: "errored",
    Outcome.EXPIRED: "expired",
    Outcome.CANCELED: "canceled",
}

OutcomeFn = Callable[[str, dict[str, Any]], Outcome]


def outcome_mix(
    errored: float = 0.05,
    expired: float = 0.05,
    *,
    seed: int = 0,
    invalid: float = 0.0,
    max_tokens: float = 0.0,
    refusal: float = 0.0,
    bad_tool_input: float = 0.0,
) -> OutcomeFn:
    """An outcome function deciding from a hash of the whole custom_id.

    Deterministic for a given seed; a retry under a new attempt number
    (``j<job>-a<attempt>``) draws again, so it may succeed.
    """
    bands = [
        (Outcome.ERRORED, errored),
        (Outcome.EXPIRED, expired),
        (Outcome.INVALID, invalid),
        (Outcome.MAX_TOKENS, max_tokens),
        (Outcome.REFUSAL, refusal),
        (Outcome.BAD_TOOL_INPUT, bad_tool_input),
    ]
    if any(share < 0 for _, share in bands) or sum(share for _, share in bands) > 1:
        raise ValueError("outcome shares must be >= 0 and sum to at most 1")

    def decide(custom_id: str, params: dict[str, Any]) -> Outcome:
        draw = _unit(f"{seed}:{custom_id}")
        for outcome, share in bands:
            if draw < share:
                return outcome
            draw -= share
        return Outcome.SUCCEEDED

    return decide


def _unit(text: str) -> float:
    """A deterministic number in [0, 1) from ``text``."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64
