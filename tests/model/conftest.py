"""Fixtures of the model tests: the llama engine on SmolLM2-135M-Instruct, and an independent tokenizer."""

from __future__ import annotations

import pytest
from model_helpers import model_file


@pytest.fixture(scope="session")
def llama_engine():
    from batchframe.server.engines import make_engine

    engine = make_engine("llama", n_parallel=4, n_ctx=1024)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tokenizer():
    """llama-cpp-python's own tokenizer for the model file (vocabulary only, no weights)."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(model_file()), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    yield count
    vocab.close()
