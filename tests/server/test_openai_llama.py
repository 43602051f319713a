"""SmolLM2 (the llama engine) answers OpenAI chat and embeddings, synchronously and in a batch."""

from __future__ import annotations

import math

import openai
import pytest
from openai_helpers import EMBEDDINGS, chat_line, embedding_line, make_client, read_lines, submit, wait_done

pytestmark = pytest.mark.model
pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def llama_client(tmp_path_factory):
    from batchframe.server import serve_in_thread

    service = serve_in_thread(data_dir=tmp_path_factory.mktemp("llama"), engine="llama",
                              engine_options={"n_parallel": 2, "n_ctx": 512})
    try:
        with make_client(service.base_url) as client:
            yield client
    finally:
        service.stop()


def test_chat_synchronously_and_in_a_batch(llama_client):
    answer = llama_client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0)
    assert answer.model == "smollm2-135m-instruct" and answer.choices[0].message.content
    assert 1 <= answer.usage.completion_tokens <= 8 and answer.usage.prompt_tokens > 3
    done = wait_done(llama_client, submit(llama_client, [chat_line("a", "What is 2+2?", max_tokens=8),
                                                         chat_line("b", "Name a fruit.", max_tokens=8)]).id, 120)
    assert done.status == "completed" and done.request_counts.completed == 2
    assert all(line["response"]["body"]["choices"][0]["message"]["content"]
               for line in read_lines(llama_client, done.output_file_id))


def test_embeddings_come_from_the_same_model(llama_client):
    full = llama_client.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog"])
    assert [len(d.embedding) for d in full.data] == [576, 576]  # SmolLM2-135M's width
    assert all(math.isclose(math.fsum(x * x for x in d.embedding), 1.0, rel_tol=1e-4) for d in full.data)
    assert full.data[0].embedding != full.data[1].embedding and full.usage.prompt_tokens >= 4
    short = llama_client.embeddings.create(model="text-embedding-3-small", input="a cat", dimensions=32)
    assert len(short.data[0].embedding) == 32
    with pytest.raises(openai.BadRequestError):
        llama_client.embeddings.create(model="text-embedding-3-large", input="a cat", dimensions=1000)
    done = wait_done(llama_client, submit(llama_client, [embedding_line("e", "a cat")], endpoint=EMBEDDINGS).id, 60)
    [line] = read_lines(llama_client, done.output_file_id)
    assert line["response"]["body"]["data"][0]["embedding"] == pytest.approx(full.data[0].embedding, abs=1e-4)
