"""``df.batch.embed``: a text column (or a template over columns) embedded through a batch API.

The texts are rendered exactly as :func:`batchframe.requests.build.build_requests` renders a prompt (same
templates, skipped rows, input checks); each request is then ``{"model", "input", "dimensions"?}`` and the job
is an ordinary one: the same ledger, shards, store, retry and merge. Results carry the vector in the
``embedding`` column (``list<float32>``), next to status, tokens and cost.

Only a provider whose API has batch embeddings takes them (``openai``, and any OpenAI-compatible host);
the others say so before anything is built or sent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pandas as pd

from batchframe.config import default_provider
from batchframe.errors import ConfigError, InputError
from batchframe.jobs.job import Job
from batchframe.jobs.plan import Built
from batchframe.jobs.submit import submit
from batchframe.providers import provider_class
from batchframe.requests.build import RequestSet, build_requests

DEFAULT_MODEL = "text-embedding-3-small"


def embed(df: pd.DataFrame, input: str, *, model: str = DEFAULT_MODEL, dimensions: int | None = None,
          provider: str | None = None, **options: Any) -> Job:
    """Embed ``input`` (a column name, or a template such as ``"{title}: {body}"``) of every row; returns the Job.

    ``options`` are :func:`batchframe.jobs.submit.submit`'s (``name``, ``api_key``, ``base_url``, ``new``,
    ``budget_usd``, ``store``...). Rows whose text is empty are skipped, as for ``submit``. Merge gives
    ``llm_embedding`` (``list<float32>``, Arrow-backed) with ``llm_status``, tokens and cost.

    Examples
    --------
    >>> job = df.batch.embed("review", model="text-embedding-3-small", provider="openai")  # doctest: +SKIP
    >>> df.batch.merge(job)["llm_embedding"].iloc[0][:3]  # doctest: +SKIP
    """
    name, extra = embedding_options(provider, dimensions, options)
    return submit(df, prompt=input, model=model, max_tokens=1, provider=name, build=_builder(df, extra), **options)


def embedding_options(provider: str | None, dimensions: int | None,
                      options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check an embed call's arguments; returns the provider's name and what each request adds to ``input``.

    Examples
    --------
    >>> embedding_options("openai", 8, {})
    ('openai', {'dimensions': 8})
    """
    name = default_provider(provider)
    if not provider_class(name).capabilities.embeddings:
        raise ConfigError(f"provider {name!r} has no batch embeddings API: use provider='openai' (or an "
                          "OpenAI-compatible host with base_url=...)")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise InputError(f"dimensions must be a whole number >= 1, got {dimensions!r}")
    for key in ("prompt", "max_tokens", "schema", "cache", "system", "tools", "tool_choice"):
        if key in options:
            raise InputError(f"embed takes no {key!r} (it embeds the text of `input`)")
    return name, ({"dimensions": dimensions} if dimensions is not None else {})


def _builder(df: pd.DataFrame, extra: dict[str, Any]) -> Any:
    def build(*, prompt: str, model: str, max_tokens: Any, cache: Any = None, schema_via: Any = None,
              **params: Any) -> Built:
        chat = build_requests(df, prompt=prompt, model=model, max_tokens=max_tokens, **params)
        return Built(as_embeddings(chat, extra), df.index)

    return build


def as_embeddings(requests: RequestSet, extra: dict[str, Any] | None = None) -> RequestSet:
    """Rendered prompts as embeddings requests: the text of each request's one user message becomes ``input``.

    Examples
    --------
    >>> rs = build_requests(pd.DataFrame({"t": ["a cat"]}), prompt="t", model="text-embedding-3-small", max_tokens=1)
    >>> as_embeddings(rs).params
    [b'{"model":"text-embedding-3-small","input":"a cat"}']
    """
    params = []
    for body in requests.params:
        request = orjson.loads(body)
        content = request["messages"][0]["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        params.append(orjson.dumps({"model": request["model"], "input": text, **(extra or {})}))
    return dataclasses.replace(requests, params=params, endpoint="embeddings")
