"""Results JSONL parsing (pure): split on \\n only, CRLF, errored lines, chunk boundaries."""

import orjson
import pytest

from batchframe.providers.anthropic.results import ResultParser, _parse_lines, parse_results
from batchframe.providers.anthropic.results_arrow import parse_block
from batchframe.results.combine import dedupe
from batchframe.results.schema import RESULT_SCHEMA


def ok(cid, text, **usage):
    return {
        "custom_id": cid,
        "result": {
            "type": "succeeded",
            "message": {
                "id": f"msg_{cid}",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5-20251001",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 3, **usage},
            },
        },
    }


ERRORED = {
    "custom_id": "bad",
    "result": {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {
                "details": {"error_visibility": "user_facing"},
                "type": "not_found_error",
                "message": "model: nope",
            },
            "request_id": None,
        },
    },
}


def jsonl(*records, sep=b"\n"):
    return sep.join(orjson.dumps(r) for r in records) + sep


def test_line_separator_inside_an_answer_does_not_split_the_line():
    data = jsonl(ok("a", "one\u2028two\u2029three\x85four\x0bfive"), ok("b", "x"))
    table = parse_results([data]).table
    assert table.column("text").to_pylist() == ["one\u2028two\u2029three\x85four\x0bfive", "x"]


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_any_chunking_and_crlf_give_the_same_rows(chunk):
    data = jsonl(ok("a", "x"), ERRORED, {"custom_id": "c", "result": {"type": "canceled"}}, sep=b"\r\n")
    parser = parse_results([data[i : i + chunk] for i in range(0, len(data), chunk)], chunk_bytes=100)
    t = parser.table
    assert t.column("custom_id").to_pylist() == ["a", "bad", "c"]
    assert t.column("status").to_pylist() == ["succeeded", "errored", "canceled"]
    assert not parser.truncated and parser.n_bad_lines == 0


def test_errored_line_keeps_type_and_message_and_has_no_usage():
    row = parse_results([jsonl(ERRORED)]).table.to_pylist()[0]
    assert row["error_type"] == "not_found_error" and row["error_message"] == "model: nope"
    assert row["input_tokens"] is None and row["text"] is None


def test_usage_cache_and_tool_use_fields():
    rec = ok(
        "a",
        "x",
        cache_creation_input_tokens=5,
        cache_read_input_tokens=7,
        cache_creation={"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 3},
    )
    rec["result"]["message"]["content"].append({"type": "tool_use", "id": "t", "name": "f", "input": {"k": 1}})
    row = parse_results([jsonl(rec)]).table.to_pylist()[0]
    assert (
        row["input_tokens"],
        row["output_tokens"],
        row["cache_creation_input_tokens"],
        row["cache_read_input_tokens"],
        row["cache_creation_1h_input_tokens"],
    ) == (11, 3, 5, 7, 3)
    assert orjson.loads(row["tool_use"]) == {"k": 1} and row["message_id"] == "msg_a"


def test_minimal_usage_is_tolerated():
    rec = {"custom_id": "a", "result": {"type": "succeeded", "message": {"content": [], "usage": {}}}}
    assert parse_results([jsonl(rec)]).table.column("text").to_pylist() == [None]


def test_a_cut_stream_is_flagged_and_its_partial_line_dropped():
    data = jsonl(ok("a", "x"), ok("b", "y"))
    parser = parse_results([data[:-20]])
    assert parser.truncated and parser.table.column("custom_id").to_pylist() == ["a"]


def test_last_line_without_newline_is_kept():
    parser = parse_results([jsonl(ok("a", "x"))[:-1]])
    assert not parser.truncated and parser.table.num_rows == 1


def test_garbage_lines_are_counted_not_fatal():
    parser = ResultParser()
    parser.feed(b"not json\n" + jsonl(ok("a", "x")) + b'{"no":"custom_id"}\n')
    assert parser.finish().num_rows == 1 and parser.n_bad_lines == 2


def test_dedupe_keeps_one_row_per_custom_id():
    t = parse_results([jsonl(ok("a", "x"), ok("b", "y")), jsonl(ok("a", "x"))]).table
    assert dedupe(t).column("custom_id").to_pylist() == ["a", "b"]


def test_arrow_path_and_line_path_agree_on_every_variant():
    multi = ok("m", "first ")
    multi["result"]["message"]["content"] += [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1]}},
        {"type": "text", "text": "second"},
        {"type": "tool_use", "id": "t2", "name": "g", "input": {"b": None}},
    ]
    unwrapped = {
        "custom_id": "u",
        "result": {"type": "errored", "error": {"type": "api_error", "message": "boom"}},
    }
    empty = {"custom_id": "e", "result": {"type": "succeeded", "message": {"content": [], "usage": {}}}}
    block = jsonl(
        ok("a", "x\u2028y", cache_creation={"ephemeral_1h_input_tokens": 4}),
        ERRORED,
        multi,
        unwrapped,
        empty,
        {"custom_id": "c", "result": {"type": "canceled"}},
        sep=b"\r\n",
    )
    fast, bad = parse_block(block, RESULT_SCHEMA)
    slow, bad_slow = _parse_lines(block)
    assert bad == bad_slow == 0 and fast.to_pylist() == slow.to_pylist()
    row = {r["custom_id"]: r for r in fast.to_pylist()}
    assert row["m"]["text"] == "first second" and orjson.loads(row["m"]["tool_use"]) == [
        {"a": [1]},
        {"b": None},
    ]
    assert row["u"]["error_type"] == "api_error" and row["e"]["text"] is None


def test_a_block_pyarrow_refuses_falls_back_to_lines():
    block = jsonl(ok("a", "x")) + b'{"custom_id": 5, "result": {"type": "expired"}}\n' + jsonl(ok("b", "y"))
    parser = parse_results([block])
    assert parser.table.column("custom_id").to_pylist() == ["a", "b"] and parser.n_bad_lines == 1


def test_odd_but_parseable_lines_never_crash_the_parse():
    lines = [
        {"custom_id": "a", "result": {"type": "succeeded", "message": {"content": None, "usage": None}}},
        {
            "custom_id": "b",
            "result": {
                "type": "succeeded",
                "message": {
                    "content": [{"type": "text", "text": "x"}],
                    "usage": {"input_tokens": 11.0, "output_tokens": "3"},
                },
            },
        },
        {"custom_id": "c", "result": {"type": "errored", "error": "plain string"}},
        {"custom_id": "d", "result": None},
        {"custom_id": "e", "result": {"type": "succeeded", "message": {"content": [{"type": "text", "text": 5}]}}},
    ]
    parser = parse_results([jsonl(*lines)])
    rows = {r["custom_id"]: r for r in parser.table.to_pylist()}
    assert sorted(rows) == ["a", "b", "e"] and parser.n_bad_lines == 2
    assert rows["b"]["text"] == "x" and rows["b"]["output_tokens"] is None and rows["a"]["text"] is None
