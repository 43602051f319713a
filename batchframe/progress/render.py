"""Renderers of a :class:`~batchframe.types.JobStatus`: plain text and HTML. Pure functions, no I/O.

Both show the same information: the job's name, provider, model and state; one bar for the whole job and one
per shard, split by succeeded / errored / canceled / expired / processing; elapsed time and an ETA; tokens and
cost so far; for a job with a schema, the answers that did not parse, by why, next to the request failures.
The ipywidgets view (:mod:`batchframe.progress.widget`) and ``Job``'s text fallback use them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

from batchframe.types import COUNT_KEYS, JobStatus, ShardStatus

__all__ = ["Bar", "Summary", "budget_text", "parse_text", "summarize", "to_html", "to_text", "format_duration"]

#: Bar colours. Ended bars are all green when every request succeeded; failures show red.
COLORS = {
    "succeeded": "#2e7d32",
    "errored": "#c62828",
    "expired": "#ef6c00",
    "canceled": "#757575",
    "processing": "#90caf9",
}
#: Text bar glyphs, in the same order as COUNT_KEYS' finished states, then processing.
GLYPHS = {"succeeded": "#", "errored": "E", "expired": "X", "canceled": "C", "processing": "."}
_ORDER = ("succeeded", "errored", "expired", "canceled", "processing")


@dataclass(frozen=True)
class Bar:
    """One progress bar: a label, request counts by state, and the number of requests."""

    label: str
    counts: dict[str, int]
    total: int
    state: str  # the shard's processing_status, or the job's state for the total bar

    @property
    def done(self) -> int:
        return self.total - self.counts.get("processing", 0)

    @property
    def outcome(self) -> str:
        """``running`` until ended; then ``success`` if every request succeeded, else ``failure``."""
        if self.state != "ended":
            return "running"
        failed = sum(self.counts.get(k, 0) for k in ("errored", "expired", "canceled"))
        return "failure" if failed else "success"


@dataclass(frozen=True)
class Summary:
    """What every renderer shows, derived from one :class:`JobStatus` at one moment."""

    status: JobStatus
    total: Bar
    shards: tuple[Bar, ...]
    elapsed: float | None  # seconds since the job was created (until it ended)
    eta: float | None  # seconds left at the rate so far; None when unknown or ended


def _shard_bar(shard: ShardStatus) -> Bar:
    total = shard.n_requests or sum(shard.counts.get(k, 0) for k in COUNT_KEYS)
    label = f"shard {shard.index}" + (f" (attempt {shard.attempt})" if shard.attempt > 1 else "")
    return Bar(label, dict(shard.counts), total, shard.processing_status)


def _total_bar(status: JobStatus) -> Bar:
    """The job's rows sent, each counted once at its latest attempt (a retry does not add rows)."""
    counts = status.counts
    return Bar("total", counts, sum(counts.values()), status.state)


def summarize(status: JobStatus, *, now: datetime | None = None, started: datetime | None = None) -> Summary:
    """Derive the bars, elapsed time and ETA of ``status``.

    ``started`` stands in for ``status.created_at`` when the job does not know it (e.g. not yet submitted).

    Examples
    --------
    >>> from batchframe.types import JobStatus
    >>> summarize(JobStatus("j", "local", "m", "ended", (), n_rows=0)).total.outcome
    'success'
    """
    now = now or datetime.now(UTC)
    shards = tuple(_shard_bar(s) for s in status.shards)
    total = _total_bar(status)
    begin = status.created_at or started
    end = status.ended_at if status.ended and status.ended_at else now
    elapsed = max(0.0, (end - begin).total_seconds()) if begin else None
    eta = None
    if not status.ended and elapsed and 0 < total.done < total.total:
        eta = elapsed / total.done * (total.total - total.done)
    return Summary(status, total, shards, elapsed, eta)


def format_duration(seconds: float | None) -> str:
    """``12s``, ``3m 05s``, ``2h 07m``; ``—`` when unknown.

    Examples
    --------
    >>> format_duration(185)
    '3m 05s'
    """
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _cost(status: JobStatus) -> str:
    if status.cost_usd is None:
        return "—"
    return f"${status.cost_usd:,.4f}" + (" (est.)" if status.cost_basis else "")


def _budget(status: JobStatus) -> tuple[float, float, float] | None:
    """Spent, committed (worst case of the shards in flight) and cap, for a job with a budget."""
    if status.budget_usd is None:
        return None
    return status.cost_usd or 0.0, status.committed_usd or 0.0, status.budget_usd


def budget_text(status: JobStatus) -> str | None:
    """The budget line: spent, committed and cap; None without a budget.

    Examples
    --------
    >>> from batchframe.types import JobStatus
    >>> budget_text(JobStatus("j", "local", "m", "ended", (), n_rows=0, cost_usd=0.5, budget_usd=2.0,
    ...                       committed_usd=0.25))
    'budget: spent $0.5000 · committed $0.2500 · cap $2.0000'
    """
    money = _budget(status)
    if money is None:
        return None
    spent, committed, cap = money
    return f"budget: spent ${spent:,.4f} · committed ${committed:,.4f} · cap ${cap:,.4f}"


def _budget_html(status: JobStatus) -> str:
    money = _budget(status)
    if money is None:
        return ""
    spent, committed, cap = money
    spent_pct, committed_pct = ((0.0, 0.0) if cap <= 0 else
                                (min(100.0, 100 * spent / cap), min(100.0, 100 * committed / cap)))
    gauge = (f'<div class="bf-gauge" style="display:flex;height:8px;width:100%;max-width:320px;background:#eee;'
             f'border-radius:3px;overflow:hidden"><div style="width:{spent_pct:.2f}%;background:#2e7d32"></div>'
             f'<div style="width:{committed_pct:.2f}%;background:#f9a825"></div></div>')
    return f'<div class="bf-budget">{html.escape(budget_text(status) or "")}{gauge}</div>'


def parse_text(status: JobStatus) -> str | None:
    """The parse line of a job with a schema: answers whose JSON failed, by why; None without a schema.

    Examples
    --------
    >>> from batchframe.types import JobStatus
    >>> parse_text(JobStatus("j", "local", "m", "ended", (), n_rows=3, parse_counts={"ok": 2, "truncated": 1}))
    'parse failures 1 of 3 answers (truncated 1)'
    """
    counts = status.parse_counts
    if counts is None:
        return None
    failed = {k: n for k, n in sorted(counts.items()) if k != "ok" and n}
    detail = f" ({', '.join(f'{k} {n}' for k, n in failed.items())})" if failed else ""
    return f"parse failures {status.parse_failures} of {sum(counts.values())} answers{detail}"


def _counts_text(bar: Bar) -> str:
    return " · ".join(f"{k} {bar.counts.get(k, 0)}" for k in _ORDER)


def _facts(summary: Summary) -> list[tuple[str, str]]:
    st = summary.status
    return [
        ("elapsed", format_duration(summary.elapsed)),
        ("ETA", format_duration(summary.eta) if summary.eta is not None else "—"),
        ("tokens", f"{st.input_tokens:,} in / {st.output_tokens:,} out"),
        ("cost", _cost(st)),
    ]


# -- text --------------------------------------------------------------------------------------------------
def _text_bar(bar: Bar, width: int) -> str:
    if bar.total <= 0:
        return "[" + " " * width + "]"
    cells, used = [], 0
    for key in _ORDER:
        n = round(width * bar.counts.get(key, 0) / bar.total)
        n = min(n, width - used)
        cells.append(GLYPHS[key] * n)
        used += n
    return "[" + "".join(cells) + " " * (width - used) + "]"


def to_text(status: JobStatus, *, width: int = 30, now: datetime | None = None) -> str:
    """A plain-text view of ``status`` (outside Jupyter, or without ipywidgets).

    Examples
    --------
    >>> from batchframe.types import JobStatus
    >>> print(to_text(JobStatus("reviews", "local", "claude-haiku-4-5", "ended", (), n_rows=0)))
    ... # doctest: +ELLIPSIS
    batch job 'reviews' · provider local · model claude-haiku-4-5 · ended
    ...
    """
    summary = summarize(status, now=now)
    head = f"batch job {status.name!r} · provider {status.provider} · model {status.model} · {status.state}"
    lines = [head]
    bars = (summary.total, *summary.shards) if len(summary.shards) != 1 else (summary.total,)
    label_w = max(len(b.label) for b in bars)
    for bar in bars:
        lines.append(
            f"{bar.label:<{label_w}} {_text_bar(bar, width)} {bar.done}/{bar.total}  {_counts_text(bar)}"
        )
    if status.parse_counts is not None:
        lines.append(parse_text(status) or "")
    if status.n_skipped:
        lines.append(f"skipped (empty prompt, never sent): {status.n_skipped}")
    if status.n_reused:
        lines.append(f"reused (identical request, sent once): {status.n_reused}")
    lines.append(" · ".join(f"{k} {v}" for k, v in _facts(summary)))
    if status.budget_usd is not None:
        lines.append(budget_text(status) or "")
    if status.cost_basis:
        lines.append(f"cost: {status.cost_basis}")
    return "\n".join(lines)


# -- HTML --------------------------------------------------------------------------------------------------
_BORDER = {"running": "#9e9e9e", "success": COLORS["succeeded"], "failure": COLORS["errored"]}


def _html_bar(bar: Bar) -> str:
    segments = []
    for key in _ORDER:
        n = bar.counts.get(key, 0)
        if n and bar.total:
            segments.append(
                f'<div class="bf-seg bf-seg-{key}" title="{key}: {n}" '
                f'style="width:{100 * n / bar.total:.3f}%;background:{COLORS[key]}"></div>'
            )
    return (
        f'<div class="bf-bar bf-{bar.outcome}" data-outcome="{bar.outcome}" style="display:flex;height:14px;'
        f'width:100%;min-width:120px;border:2px solid {_BORDER[bar.outcome]};border-radius:3px;'
        f'background:#f5f5f5;overflow:hidden">{"".join(segments)}</div>'
    )


def _html_counts(bar: Bar) -> str:
    parts = [
        f'<span class="bf-n bf-n-{k}" data-key="{k}" style="color:{COLORS[k]}">'
        f"{k}&nbsp;{bar.counts.get(k, 0)}</span>"
        for k in _ORDER
    ]
    return " · ".join(parts)


def _html_row(bar: Bar, kind: str) -> str:
    cell = "padding:2px 6px;white-space:nowrap"
    return (
        f'<tr class="bf-row bf-row-{kind}" data-label="{html.escape(bar.label)}">'
        f'<td style="{cell}"><b>{html.escape(bar.label)}</b></td>'
        f'<td style="padding:2px 6px;width:45%">{_html_bar(bar)}</td>'
        f'<td style="{cell}" class="bf-done">{bar.done}/{bar.total}</td>'
        f'<td style="{cell}">{_html_counts(bar)}</td></tr>'
    )


def to_html(status: JobStatus, *, now: datetime | None = None) -> str:
    """An HTML view of ``status``; the widget shows it, and so does a static notebook output.

    The root element carries ``class="bf-job"`` and ``data-state`` so a browser test can find it.

    Examples
    --------
    >>> from batchframe.types import JobStatus
    >>> 'data-state="ended"' in to_html(JobStatus("j", "local", "m", "ended", (), n_rows=0))
    True
    """
    summary = summarize(status, now=now)
    esc = html.escape
    state_color = _BORDER[summary.total.outcome]
    head = (
        f'<div class="bf-head"><b class="bf-name">{esc(status.name)}</b> · provider '
        f'<code class="bf-provider">{esc(status.provider)}</code> · model <code class="bf-model">'
        f'{esc(status.model)}</code> · <b class="bf-state" style="color:{state_color}">'
        f"{esc(status.state)}</b>"
        "</div>"
    )
    rows = [_html_row(summary.total, "total")] + [_html_row(b, "shard") for b in summary.shards]
    facts = " · ".join(f'<span class="bf-{k.lower()}">{k} <b>{esc(v)}</b></span>' for k, v in _facts(summary))
    if status.parse_counts is not None:
        color = COLORS["errored"] if status.parse_failures else COLORS["succeeded"]
        facts += (f' · <span class="bf-parse" data-failures="{status.parse_failures}" style="color:{color}">'
                  f'{esc(parse_text(status) or "")}</span>')
    if status.n_skipped:
        facts += f' · <span class="bf-skipped">skipped <b>{status.n_skipped}</b></span>'
    if status.n_reused:
        facts += f' · <span class="bf-reused">reused <b>{status.n_reused}</b></span>'
    return (
        f'<div class="bf-job" data-state="{esc(status.state)}" data-outcome="{summary.total.outcome}" '
        f'style="font-family:var(--jp-ui-font-family,sans-serif);font-size:13px">{head}'
        '<table class="bf-bars" style="border-collapse:collapse;width:100%;margin:4px 0">'
        f'{"".join(rows)}</table>'
        f'<div class="bf-facts">{facts}</div>{_budget_html(status)}</div>'
    )
