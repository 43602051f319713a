"""Pure tests of request building: DataFrame -> bodies, without network or disk."""

import base64

import numpy as np
import orjson
import pandas as pd
import pytest

import batchframe
from batchframe.errors import InputError
from batchframe.providers.anthropic.codec import encode_lines
from batchframe.requests.build import build_requests, render_prompts
from batchframe.requests.fingerprint import fingerprint


def params(rs, i):
    return orjson.loads(rs.params[i])


def test_column_prompt_builds_one_body_per_row_with_custom_ids_by_position():
    df = pd.DataFrame({"q": ["a", "b", "c"]}, index=["x y", "ü", "x y"])
    rs = build_requests(df, prompt="q", model="claude-haiku-4-5", max_tokens=10, temperature=0.2)
    assert rs.custom_ids == ["r0", "r1", "r2"]
    assert params(rs, 1) == {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "b"}],
    }
    assert rs.positions.tolist() == [0, 1, 2]


def test_template_over_columns_with_format_spec():
    df = pd.DataFrame({"title": ["Bolt"], "price": [3.14159], "body text": ["ok"]})
    rs = build_requests(df, prompt="{title} costs {price:.2f}: {body text} {{literal}}", model="m", max_tokens=5)
    assert params(rs, 0)["messages"][0]["content"] == "Bolt costs 3.14: ok {literal}"


def test_missing_template_column_is_named():
    df = pd.DataFrame({"title": ["x"]})
    with pytest.raises(InputError, match="'body'"):
        build_requests(df, prompt="{title}: {body}", model="m", max_tokens=5)


def test_prompt_that_is_neither_column_nor_template():
    with pytest.raises(InputError, match="not a column"):
        build_requests(pd.DataFrame({"q": ["x"]}), prompt="question", model="m", max_tokens=5)


@pytest.mark.parametrize("missing", [None, np.nan, "", "   ", pd.NA])
def test_nan_none_and_blank_prompts_are_skipped(missing):
    df = pd.DataFrame({"q": pd.Series(["keep", missing, "also"], dtype=object)})
    rs = build_requests(df, prompt="q", model="m", max_tokens=5)
    assert rs.skipped.tolist() == [False, True, False]
    assert rs.positions.tolist() == [0, 2] and rs.custom_ids == ["r0", "r2"]


def test_template_row_with_a_missing_field_is_skipped():
    df = pd.DataFrame({"a": ["x", None], "b": ["y", "z"]})
    _, skip = render_prompts(df, "{a} {b}")
    assert skip.tolist() == [False, True]


def test_per_row_max_tokens_and_system_from_columns():
    df = pd.DataFrame({"q": ["a", "b"], "budget": [10, 20.0], "sys": ["be short", None]})
    rs = build_requests(df, prompt="q", model="m", max_tokens="budget", system=batchframe.col("sys"))
    assert params(rs, 0)["max_tokens"] == 10 and params(rs, 0)["system"] == "be short"
    assert params(rs, 1)["max_tokens"] == 20 and "system" not in params(rs, 1)


def test_tools_and_any_other_parameter_pass_through():
    tools = [{"name": "label", "input_schema": {"type": "object"}}]
    rs = build_requests(
        pd.DataFrame({"q": ["a"]}),
        prompt="q",
        model="m",
        max_tokens=5,
        tools=tools,
        tool_choice={"type": "tool", "name": "label"},
        stop_sequences=["\n"],
        metadata={"user_id": "u"},
    )
    p = params(rs, 0)
    assert p["tools"] == tools and p["tool_choice"]["name"] == "label" and p["stop_sequences"] == ["\n"]
    assert p["metadata"] == {"user_id": "u"}


def test_stream_and_zero_max_tokens_are_refused():
    df = pd.DataFrame({"q": ["a"]})
    with pytest.raises(InputError, match="stream"):
        build_requests(df, prompt="q", model="m", max_tokens=5, stream=True)
    with pytest.raises(InputError, match="max_tokens"):
        build_requests(df, prompt="q", model="m", max_tokens=0)


def test_documents_from_paths_and_images_from_bytes(tmp_path):
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4 fake")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 8
    df = pd.DataFrame({"doc": [str(pdf), None], "img": [png, png]})
    rs = build_requests(df, prompt="Summarize this.", model="m", max_tokens=5, documents="doc", images="img")
    content = params(rs, 0)["messages"][0]["content"]
    assert [b["type"] for b in content] == ["document", "image", "text"]
    assert base64.b64decode(content[0]["source"]["data"]) == b"%PDF-1.4 fake"
    assert content[0]["source"]["media_type"] == "application/pdf"
    assert content[1]["source"]["media_type"] == "image/png"
    assert [b["type"] for b in params(rs, 1)["messages"][0]["content"]] == ["image", "text"]


def test_unreadable_document_names_row_and_path(tmp_path):
    df = pd.DataFrame({"doc": [str(tmp_path / "nope.pdf")]}, index=["row-7"])
    with pytest.raises(InputError, match="row-7.*nope.pdf"):
        build_requests(df, prompt="Summarize", model="m", max_tokens=5, documents="doc")


def test_fingerprint_depends_on_provider_identity_and_bodies():
    df = pd.DataFrame({"q": ["a", "b"]})

    def lines(max_tokens):
        rs = build_requests(df, prompt="q", model="m", max_tokens=max_tokens)
        return encode_lines(rs.custom_ids, rs.params)

    assert fingerprint("x", lines(5)) == fingerprint("x", lines(5))
    assert fingerprint("x", lines(5)) != fingerprint("y", lines(5)) != fingerprint("y", lines(6))


def test_dry_run_previews_without_sending():
    df = pd.DataFrame({"q": ["hi", None]}, index=pd.Index(["a", "b"], name="k"))
    preview = df.batch.requests(prompt="q", model="claude-haiku-4-5", max_tokens=8, provider="anthropic")
    assert preview.index.equals(df.index)
    assert preview.loc["a", "params"]["messages"] == [{"role": "user", "content": "hi"}]
    assert preview["skipped"].tolist() == [False, True]


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", pd.ArrowDtype(__import__("pyarrow").large_string())])
def test_arrow_rendered_templates_equal_str_format(dtype):
    """Arrow text columns render in one Arrow pass; it must give exactly what str.format gives row by row."""
    df = pd.DataFrame({"t": ["x", "", None, "ü \u2028 日本 {t}", "a", "  "],
                       "b": ["1", "2", "3", None, " ", "\n"]}, index=list("pqrstu"))
    template = "{{lit}} Title {t}: {b}!{t}"
    arrow = render_prompts(df.astype(dtype), template)
    plain = render_prompts(df.astype(object), template)
    assert arrow[0] == plain[0] == ["{lit} Title x: 1!x", "{lit} Title : 2!", None, None, "{lit} Title a:  !a",
                                    "{lit} Title   : \n!  "]
    assert arrow[1].tolist() == plain[1].tolist()


def test_percent_signs_in_shared_params_and_prompts_are_sent_as_written():
    df = pd.DataFrame({"q": ["a %s %d b", "100%"]})
    rs = build_requests(df, prompt="q", model="m%sodel", max_tokens=5, system="100% sure %b")
    assert [orjson.loads(p) for p in rs.params] == [
        {"model": "m%sodel", "max_tokens": 5, "system": "100% sure %b",
         "messages": [{"role": "user", "content": text}]} for text in ("a %s %d b", "100%")]
