""""Cost so far" in the job status: each harvested shard records its batch cost; the job sums the known ones."""

import pyarrow as pa
import pytest

from batchframe.harvest import _cost
from batchframe.manifest import _known_sum


def _results(models, inputs, outputs):
    n = len(models)
    none = pa.array([None] * n, pa.int64())
    return pa.table({"model": pa.array(models, pa.string()), "input_tokens": pa.array(inputs, pa.int64()),
                     "output_tokens": pa.array(outputs, pa.int64()), "cache_creation_input_tokens": none,
                     "cache_read_input_tokens": none, "cache_creation_1h_input_tokens": none})


def test_shard_cost_at_batch_prices():
    # claude-haiku-4-5: $1 / $5 per million tokens, half price in a batch; an errored row has no usage.
    table = _results(["claude-haiku-4-5", "claude-haiku-4-5", None], [1_000_000, 0, None], [0, 200_000, None])
    assert _cost(table) == pytest.approx(0.5 + 0.5)


def test_unknown_price_is_none_not_zero():
    assert _cost(_results(["echo", "echo"], [10, 20], [1, 2])) is None


def test_job_sums_known_shard_costs():
    assert _known_sum([None, None]) is None
    assert _known_sum([0.25, None, 0.5]) == pytest.approx(0.75)
