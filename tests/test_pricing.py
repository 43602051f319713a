import pandas as pd
import pytest

from batchframe.providers.anthropic.pricing import PRICES, batch_price_for, price_for
from batchframe.results.cost import batch_cost


def test_dated_and_latest_ids_resolve_to_the_base_model():
    assert price_for("claude-haiku-4-5-20251001") == PRICES["claude-haiku-4-5"]
    assert price_for("claude-3-5-haiku-latest") == PRICES["claude-3-5-haiku"]


@pytest.mark.parametrize("model", ["echo", "smollm2-135m-instruct", "claude-nonexistent-9", "", None])
def test_unknown_models_have_no_price(model):
    assert price_for(model) is None


def test_batch_cost_is_half_of_list_price_for_every_token_kind():
    model = pd.Series(["claude-sonnet-4-5"])
    cost = batch_cost(model, batch_price_for, input_tokens=pd.Series([1000]), output_tokens=pd.Series([100]),
                      cache_creation_input_tokens=pd.Series([2000]), cache_read_input_tokens=pd.Series([4000]),
                      cache_creation_1h_input_tokens=pd.Series([500]))
    list_price = 1000 * 3.0 + 100 * 15.0 + 1500 * 3.75 + 500 * 6.0 + 4000 * 0.30
    assert cost.iloc[0] == pytest.approx(list_price / 1e6 / 2)


def test_rows_without_usage_or_price_get_null_cost():
    model = pd.Series(["claude-haiku-4-5", "claude-haiku-4-5", "mystery-model"], index=["a", "b", "c"])
    cost = batch_cost(model, batch_price_for, input_tokens=pd.Series([10, None, 10], index=model.index, dtype="Int64"),
                      output_tokens=pd.Series([2, None, 2], index=model.index, dtype="Int64"))
    assert str(cost.dtype) == "Float64"
    assert cost["a"] == pytest.approx((10 * 1.0 + 2 * 5.0) / 2e6)
    assert cost.isna().tolist() == [False, True, True]
