"""Pure tests of the input rules of request building (issue 11, sections 8 and 9): bad input is refused with an
InputError that names the column, the row label and the value, before anything is sent; natural pandas input
(numpy scalars, aligned Series, int columns with NaN, blank templates) works."""

import numpy as np
import orjson
import pandas as pd
import pytest

from batchframe.errors import InputError
from batchframe.jobs.store import validate_name
from batchframe.requests.build import build_requests, col, render_prompts


def build(df, prompt="q", **kwargs):
    kwargs.setdefault("max_tokens", 16)
    return build_requests(df, prompt=prompt, model="m", **kwargs)


def params(rs, i):
    return orjson.loads(rs.params[i])


def objects(*values, index):
    """An object column holding exactly ``values`` (no inference, no broadcasting of lists or arrays)."""
    return pd.Series(list(values), dtype=object, index=index)


def refused(df, *parts, **kwargs):
    """Build, expect an InputError, and check its message names every part; return the message."""
    with pytest.raises(InputError) as info:
        build(df, **kwargs)
    message = str(info.value)
    for part in parts:
        assert part in message, (part, message)
    return message


# -- section 8: clear errors for bad input ------------------------------------------------------------


def test_format_spec_that_fails_on_a_row_names_column_row_and_value():
    df = pd.DataFrame({"x": objects(7, "abc", index=["ok", "bad-row"])})
    message = refused(df, "'x'", "'bad-row'", "'abc'", "{x:d}", prompt="n={x:d}")
    assert "format spec" in message


def test_nested_format_spec_is_refused_up_front_naming_the_field():
    df = pd.DataFrame({"x": ["a"], "w": [5]})
    refused(df, "{x:>{w}}", "not support", prompt="{x:>{w}}")


@pytest.mark.parametrize("prompt", ["q", "Say: {q}"])
def test_lone_surrogate_in_a_prompt_names_column_row_and_value(prompt):
    df = pd.DataFrame({"q": objects("fine", "bad \ud800 text", index=["r-a", "r-b"])})
    message = refused(df, "'q'", "'r-b'", repr("bad \ud800 text"), prompt=prompt)
    assert "surrogate" in message and "UTF-8" in message


@pytest.mark.parametrize("value", [b"bytes", ["a", "list"], {"a": "dict"}, True, np.array([1, 2])], ids=type)
@pytest.mark.parametrize("prompt", ["q", "Say: {q}"])
def test_non_text_cells_are_refused_naming_column_row_and_value(prompt, value):
    df = pd.DataFrame({"q": objects("fine", value, index=["first", "second"])})
    refused(df, "'q'", "'second'", repr(value)[:40], "astype(str)", prompt=prompt)


@pytest.mark.parametrize("prompt", ["q", "Say: {q}"])
def test_a_bool_column_is_refused_naming_its_first_row(prompt):
    df = pd.DataFrame({"q": [True, False]}, index=["yes", "no"])
    refused(df, "'q'", "'yes'", "True", "astype(str)", prompt=prompt)


@pytest.mark.parametrize("value", [16.0, np.float64(16.0), True, np.bool_(True), 0, -3, None, "16x"])
def test_scalar_max_tokens_that_is_not_a_whole_number_at_least_one_is_refused(value):
    df = pd.DataFrame({"q": ["a"]})
    if isinstance(value, str):  # a string names a column
        refused(df, "'16x'", "max_tokens", max_tokens=value)
    else:
        refused(df, "max_tokens", repr(value.item() if isinstance(value, np.generic) else value), max_tokens=value)


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([16, 0], "0"),
        ([16.0, 2.5], "2.5"),
        ([True, True], "True"),
        (objects(16, "many", index=["row-1", "row-2"]), "'many'"),
    ],
)
def test_per_row_max_tokens_that_is_not_a_whole_number_at_least_one_names_the_row(values, shown):
    df = pd.DataFrame({"q": ["a", "b"], "budget": values}, index=["row-1", "row-2"])
    first = "'row-1'" if shown == "True" else "'row-2'"
    refused(df, "max_tokens", "'budget'", first, shown, max_tokens="budget")
    refused(df, "max_tokens", first, shown, max_tokens=df["budget"])


def test_custom_id_parameter_is_refused():
    refused(pd.DataFrame({"q": ["a"]}), "custom_id", "'mine-1'", "assigns", custom_id="mine-1")


@pytest.mark.parametrize("name", ["monday\n", "mon day", "tab\tname", "nul\x00", "bell\x07", " lead"])
def test_job_name_with_whitespace_or_control_character_is_refused(name):
    with pytest.raises(InputError) as info:
        validate_name(name)
    assert repr(name) in str(info.value)


def test_zero_row_frame_says_there_is_nothing_to_send():
    with pytest.raises(InputError, match="the frame has no rows: nothing to send"):
        build(pd.DataFrame({"q": pd.Series([], dtype=str)}))


def test_nothing_is_built_for_a_frame_with_one_bad_row_among_good_ones():
    df = pd.DataFrame({"q": pd.Series(["a"] * 5 + [b"raw"], dtype=object)})
    with pytest.raises(InputError, match="row 5"):
        build(df)


# -- section 9: natural pandas input works ------------------------------------------------------------


def test_numpy_scalars_are_plain_json_numbers():
    df = pd.DataFrame({"q": ["a", "b"], "n": [8, 16]})
    rs = build(df, max_tokens=df.n.max(), temperature=np.float32(0.5), top_p=np.float64(0.9), top_k=np.int32(3))
    assert params(rs, 0) == {
        "model": "m",
        "max_tokens": 16,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 3,
        "messages": [{"role": "user", "content": "a"}],
    }
    assert b'"max_tokens":16,' in rs.params[1]
    assert params(build(df, max_tokens=np.int64(16), temperature=np.float32(0.1)), 0)["temperature"] == 0.1


def test_numpy_values_nested_in_a_parameter_are_plain_json():
    rs = build(pd.DataFrame({"q": ["a"]}), metadata={"user_id": "u"}, stop_sequences=np.array(["x", "y"]))
    assert params(rs, 0)["stop_sequences"] == ["x", "y"]


def test_aligned_series_give_per_row_values():
    df = pd.DataFrame({"q": ["a", "b", "c"], "n": [5, 6, 7]}, index=["x", "y", "z"])
    system = pd.Series(["be brief", None, "be kind"], index=df.index)
    rs = build(df, max_tokens=df["n"] * 2, system=system, temperature=df["n"] / 10)
    assert [params(rs, i)["max_tokens"] for i in range(3)] == [10, 12, 14]
    assert [params(rs, i).get("system") for i in range(3)] == ["be brief", None, "be kind"]
    assert params(rs, 2)["temperature"] == 0.7


def test_a_series_with_another_index_is_refused():
    df = pd.DataFrame({"q": ["a", "b"]}, index=["x", "y"])
    swapped = pd.Series(["s", "t"], index=["y", "x"])
    refused(df, "system", "does not match the frame's index", "'x'", "'y'", system=swapped)
    refused(df, "max_tokens", "3 rows", max_tokens=pd.Series([1, 2, 3]))


@pytest.mark.parametrize("dtype", ["float64", "Int64"])
def test_an_int_column_with_nan_renders_whole_numbers(dtype):
    df = pd.DataFrame({"n": pd.Series([1, None, 30], dtype=dtype), "f": [1.5, 2.0, 0.25]})
    rs = build(df, prompt="n={n} f={f}")
    assert rs.skipped.tolist() == [False, True, False]
    assert [params(rs, i)["messages"][0]["content"] for i in range(2)] == ["n=1 f=1.5", "n=30 f=0.25"]
    assert params(build(df, prompt="n"), 0)["messages"][0]["content"] == "1"
    assert params(build(df, prompt="{n:d}"), 1)["messages"][0]["content"] == "30"


def test_numbers_in_a_text_column_render_naturally():
    df = pd.DataFrame({"q": pd.Series(["text", 2, 3.0, 4.5, np.int64(5)], dtype=object)})
    texts, skip = render_prompts(df, "<{q}>")
    assert texts == ["<text>", "<2>", "<3>", "<4.5>", "<5>"] and not skip.any()


def test_a_template_whose_fields_are_all_blank_is_skipped():
    df = pd.DataFrame({"a": ["", "x", " ", None, ""], "b": ["  ", "", "\n", "y", "z"]})
    rs = build(df, prompt="Title: {a} / Body: {b}")
    assert rs.skipped.tolist() == [True, False, True, True, False]
    assert rs.custom_ids == ["r1", "r4"]
    assert params(rs, 1)["messages"][0]["content"] == "Title:  / Body: z"


def test_per_row_column_by_col_still_works_with_a_float_column_of_whole_numbers():
    df = pd.DataFrame({"q": ["a", "b"], "budget": [10.0, np.nan], "sys": ["s", None]})
    rs = build(df.iloc[:1], max_tokens="budget", system=col("sys"))
    assert params(rs, 0)["max_tokens"] == 10 and params(rs, 0)["system"] == "s"
    refused(df, "max_tokens", "missing", "row 1", max_tokens="budget")


def test_an_integer_row_label_is_shown_as_a_plain_number():
    df = pd.DataFrame({"q": objects("a", ["b"], index=pd.Index([10, 20], dtype="int64"))})
    message = refused(df, "row 20:", "['b']")
    assert "np.int64" not in message
