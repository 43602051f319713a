"""Sharding by request count and by bytes (pure)."""

import numpy as np
import orjson
import pandas as pd
import pytest

from batchframe.errors import InputError, LimitError
from batchframe.providers.anthropic.codec import ENVELOPE_BYTES, body_size, encode_lines
from batchframe.providers.anthropic.codec import frame_shard as shard_body
from batchframe.requests.build import build_requests
from batchframe.requests.shards import ShardLimits, plan_shards


def test_250001_requests_make_three_shards_at_the_default_limit():
    ranges = plan_shards(np.full(250_001, 180), ShardLimits())
    assert [stop - start for start, stop in ranges] == [100_000, 100_000, 50_001]


def test_250001_rows_of_a_real_frame_shard_into_three():
    df = pd.DataFrame({"q": [f"question {i}" for i in range(250_001)]})
    rs = build_requests(df, prompt="q", model="claude-haiku-4-5", max_tokens=16)
    lines = encode_lines(rs.custom_ids, rs.params)
    ranges = plan_shards([len(b) for b in lines], envelope=ENVELOPE_BYTES)
    assert [stop - start for start, stop in ranges] == [100_000, 100_000, 50_001]


def test_bodies_over_the_byte_limit_shard_by_bytes_and_every_body_fits():
    lines = [orjson.dumps({"custom_id": f"r{i}", "params": {"x": "y" * (100 + i % 50)}}) for i in range(500)]
    limits = ShardLimits(max_bytes=10_000)
    ranges = plan_shards([len(b) for b in lines], limits, envelope=ENVELOPE_BYTES)
    assert len(ranges) > 5
    assert ranges[0][0] == 0 and ranges[-1][1] == 500
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for start, stop in ranges:
        body = shard_body(lines[start:stop])
        assert len(body) <= 10_000 and len(body) == body_size([len(b) for b in lines[start:stop]])
        assert len(orjson.loads(body)["requests"]) == stop - start
    # greedy: adding the next line would have overflowed
    start, stop = ranges[0]
    assert len(shard_body(lines[start : stop + 1])) > 10_000


def test_a_single_request_over_the_limit_is_a_limit_error():
    with pytest.raises(LimitError, match="request 1"):
        plan_shards([10, 5000, 10], ShardLimits(max_bytes=1000), envelope=ENVELOPE_BYTES)


def test_limits_can_only_be_lowered():
    with pytest.raises(InputError, match="only be lowered"):
        ShardLimits(max_requests=200_000).within(ShardLimits())
