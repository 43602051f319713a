""""Cost so far" in the job status: each harvested shard records its batch cost; the job sums the known ones."""

import pyarrow as pa
import pytest

from batchframe.jobs.manifest import known_sum
from batchframe.providers.anthropic.pricing import batch_price_for
from batchframe.results.cost import total_cost


def _results(models, inputs, outputs):
    n = len(models)
    none = pa.array([None] * n, pa.int64())
    return pa.table({"model": pa.array(models, pa.string()), "input_tokens": pa.array(inputs, pa.int64()),
                     "output_tokens": pa.array(outputs, pa.int64()), "cache_creation_input_tokens": none,
                     "cache_read_input_tokens": none, "cache_creation_1h_input_tokens": none})


def test_shard_cost_at_batch_prices():
    # claude-haiku-4-5: $1 / $5 per million tokens, half price in a batch; an errored row has no usage.
    table = _results(["claude-haiku-4-5", "claude-haiku-4-5", None], [1_000_000, 0, None], [0, 200_000, None])
    assert total_cost(table, batch_price_for) == pytest.approx(0.5 + 0.5)


def test_unknown_price_is_none_not_zero():
    assert total_cost(_results(["echo", "echo"], [10, 20], [1, 2]), batch_price_for) is None


def test_job_sums_known_shard_costs():
    assert known_sum([None, None]) is None
    assert known_sum([0.25, None, 0.5]) == pytest.approx(0.75)
