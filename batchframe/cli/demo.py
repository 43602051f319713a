"""``batchframe demo``: the main job end to end on the embedded default.

It starts the local service (SmolLM2-135M through llama.cpp by default, or the echo engine), submits the
sample reviews in ``data/reviews.csv`` as two jobs (a sentiment label that ``schema=`` constrains to positive /
negative / mixed, and a one-sentence summary), shows progress, merges the answers back by index, writes the
merged frame to Parquet and prints a summary.
Running it again re-attaches to the same jobs instead of submitting (and paying) twice.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from batchframe.api import Job, Store
from batchframe.errors import ConfigError, InputError

#: The sentiment job's answer: one label of three. Sent as ``schema=``, so the engine's grammar (llama.cpp for
#: SmolLM2) allows nothing else, and it comes back as the typed column ``sentiment_label``.
SENTIMENT = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["positive", "negative", "mixed"]}},
    "required": ["label"],
}
TASKS = {
    "sentiment": dict(
        system="You label product reviews as positive, negative or mixed.",
        prompt="Review: {review}\nWhat is the sentiment of this review?", max_tokens=24, temperature=0.0,
        schema=SENTIMENT,
    ),
    "summary": dict(
        system="You summarize product reviews in one short sentence.",
        prompt="Summarize this review of a {product} in one sentence: {review}", max_tokens=40,
        temperature=0.0,
    ),
}
MODEL = "claude-haiku-4-5"  # the code a user would run against the real API; the local engine answers it


@dataclass
class DemoRun:
    """What one demo run produced."""

    frame: pd.DataFrame
    jobs: dict[str, Job]
    reused: dict[str, bool]
    parquet: Path
    seconds: float


def run_demo(*, engine: str = "llama", data: str | Path = "data/reviews.csv", rows: int | None = None,
             out: str | Path | None = None, store: str | Path | None = None, poll_interval: float = 0.5,
             timeout: float = 1800.0) -> DemoRun:
    """Run the demo jobs on a local service started for this call, and write the merged Parquet file.

    Examples
    --------
    >>> run = run_demo(engine="echo", rows=5)  # doctest: +SKIP
    >>> run.frame["sentiment_label"].tolist()  # doctest: +SKIP
    ['mixed', 'negative', 'positive', 'positive', 'negative']
    """
    _check_engine(engine)
    df = load_reviews(data, rows=rows)
    store_ = Store(store)
    data_dir = store_.root / f"service-{engine}"
    started = time.monotonic()
    from batchframe.server import serve_in_thread

    with serve_in_thread(data_dir=data_dir, engine=engine) as service:
        endpoint: dict[str, Any] = dict(provider="local", base_url=service.base_url,
                                        provider_options={"data_dir": str(data_dir)}, store=store_)
        known = set(store_.names())
        jobs = {task: df.batch.submit(model=MODEL, name=f"demo-{engine}-{task}", **spec, **endpoint)
                for task, spec in TASKS.items()}
        for job in jobs.values():
            job.wait(poll_interval=poll_interval, timeout=timeout)
        merged = df
        for task, job in jobs.items():
            merged = merged.batch.merge(job, prefix=f"{task}_")
    path = Path(out) if out else store_.root / f"demo-{engine}.parquet"
    merged.to_parquet(path)
    reused = {task: job.name in known for task, job in jobs.items()}
    return DemoRun(merged, jobs, reused, path, time.monotonic() - started)


def load_reviews(path: str | Path, *, rows: int | None = None) -> pd.DataFrame:
    """The sample reviews, indexed by ``review_id``.

    Examples
    --------
    >>> load_reviews("data/reviews.csv", rows=3).index.tolist()  # doctest: +SKIP
    ['R001', 'R002', 'R003']
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"sample data not found at {path}; run the demo from the repository root "
                         f"(or pass --data), or regenerate it with: python scripts/make_sample_data.py")
    df = pd.read_csv(path, index_col="review_id")
    return df.head(rows) if rows else df


def _check_engine(engine: str) -> None:
    if engine == "llama" and importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError("the llama engine needs the local-model extra (llama-cpp-python), which is not "
                          "installed: pip install 'batchframe[local]' (see README, Troubleshooting), "
                          "or run the demo without a model: make demo ENGINE=echo")


def summary_table(run: DemoRun) -> pd.DataFrame:
    """One line per job: rows by status, tokens, cost and whether it was re-attached."""
    lines = {}
    for task, job in run.jobs.items():
        status = run.frame[f"{task}_status"].value_counts().to_dict()
        lines[job.name] = {
            **{s: int(status.get(s, 0)) for s in ("succeeded", "errored", "canceled", "expired", "skipped")},
            "input_tokens": int(run.frame[f"{task}_input_tokens"].sum()),
            "output_tokens": int(run.frame[f"{task}_output_tokens"].sum()),
            "answered_by": ", ".join(sorted(run.frame[f"{task}_model"].dropna().unique())),
            "parse_failures": _parse_failures(run.frame, task),
            "reattached": run.reused[task],
        }
    return pd.DataFrame.from_dict(lines, orient="index")


def _parse_failures(frame: pd.DataFrame, task: str) -> int | None:
    """Answers of a ``schema=`` job whose JSON did not parse; None for a job without a schema."""
    column = f"{task}_parse_status"
    if column not in frame.columns:
        return None
    return int((frame[column].notna() & (frame[column] != "ok")).sum())


def add_parser(subparsers: Any) -> None:
    """Register ``demo`` on the ``batchframe`` command."""
    p = subparsers.add_parser("demo", help="run the sample job on the local service", description=__doc__)
    p.add_argument("--engine", default="llama", help="llama (SmolLM2-135M, default) or echo (no model)")
    p.add_argument("--data", default="data/reviews.csv", help="CSV with review_id, product and review columns")
    p.add_argument("--rows", type=int, help="only the first N rows")
    p.add_argument("--out", help="Parquet path (default: <job store>/demo-<engine>.parquet)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    run = run_demo(engine=args.engine, data=args.data, rows=args.rows, out=args.out)
    print("\nSummary")
    print(summary_table(run).to_string())
    print("\nFirst answers")
    print(run.frame[["review", "sentiment_label", "summary_text"]].head(5).to_string(max_colwidth=45))
    print(f"\nwall time: {run.seconds:.1f} s")
    print(f"parquet:   {run.parquet.resolve()}")
    return 0
