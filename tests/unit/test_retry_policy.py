import random

import pytest

from workers_core.jobs.retry import RetryPolicy


def test_backoff_doubles_until_the_cap_without_jitter() -> None:
    policy = RetryPolicy(backoff_base_s=1, backoff_factor=2, backoff_max_s=10, jitter=False)
    assert [policy.delay_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_equal_jitter_keeps_half_the_backoff_and_randomises_the_rest() -> None:
    policy = RetryPolicy(backoff_base_s=4, backoff_max_s=100)
    rng = random.Random(7)
    delays = [policy.delay_s(2, rng) for _ in range(500)]
    assert all(4 <= d <= 8 for d in delays)
    assert max(delays) - min(delays) > 3  # spread, not a constant


def test_zero_backoff_means_immediately() -> None:
    assert RetryPolicy(backoff_base_s=0).delay_s(3) == 0


@pytest.mark.parametrize("attempts", [0, 101])
def test_max_attempts_is_bounded(attempts: int) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=attempts)
