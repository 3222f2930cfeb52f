"""Prices, batch discount, cache multipliers and budget caps."""

from __future__ import annotations

import pytest

from docproc.costs import Budget, ModelPrice, PriceTable, base_model, period_starts
from docproc.models import Usage

TABLE = PriceTable(prices={"m": ModelPrice(input=3.0, output=15.0)})


def test_cost_applies_batch_discount_and_cache_multipliers() -> None:
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    # half of: 3 input + 15 output + 3 * 2 (1 h cache write) + 3 * 0.1 (cache read)
    assert TABLE.cost("m", usage) == pytest.approx((3 + 15 + 6 + 0.3) / 2)
    assert TABLE.cost("m", Usage()) == 0
    assert TABLE.cost("unknown", usage) is None


def test_estimate_counts_every_byte_as_input_and_every_answer_at_max_tokens() -> None:
    estimate = TABLE.estimate("m", request_bytes=3_000_000, requests=1000, max_tokens=1000)
    assert estimate == pytest.approx((1_000_000 * 3 + 1_000_000 * 15) / 1e6 / 2)


def test_budget_refuses_a_batch_that_would_cross_a_cap() -> None:
    budget = Budget(daily_usd=10.0, monthly_usd=100.0)
    assert budget.refusal(today=5.0, month=50.0, estimate=4.0) is None
    assert "daily budget" in (budget.refusal(today=8.0, month=50.0, estimate=4.0) or "")
    assert "monthly budget" in (budget.refusal(today=0.0, month=99.0, estimate=4.0) or "")
    assert Budget().refusal(today=1e9, month=1e9, estimate=1e9) is None and not Budget().capped


def test_period_starts_are_utc_day_and_month() -> None:
    day, month = period_starts(1_700_000_000.0)  # 2023-11-14T22:13:20Z
    assert day == "2023-11-14T00:00:00.000000+00:00"
    assert month == "2023-11-01T00:00:00.000000+00:00"


def test_live_requests_cost_the_list_price() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert TABLE.cost("m", usage, batch=False) == pytest.approx(3 + 15)
    assert TABLE.cost("m", usage) == pytest.approx((3 + 15) / 2)
    assert TABLE.estimate("m", 3_000_000, 1, 0, live=True) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5@20250929",
    ],
)
def test_platform_model_ids_share_the_price_of_their_model(model: str) -> None:
    assert base_model(model) == "claude-sonnet-4-5"
    assert PriceTable().price(model) == ModelPrice(3.0, 15.0)


def test_an_exact_entry_wins_and_an_opaque_id_has_no_price() -> None:
    exact = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    table = PriceTable(
        prices={"claude-sonnet-4-5": ModelPrice(3, 15), exact: ModelPrice(3.3, 16.5)}
    )
    assert table.price(exact) == ModelPrice(3.3, 16.5)
    opaque = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
    assert not table.knows(opaque)
