"""``batchframe retry|cancel|delete|batches`` against the local service over HTTP."""

import anthropic
from jobs_helpers import KEY, frame, service_batches, submit

from batchframe.cli.main import main
from batchframe.server import Faults


def test_retry_delete_and_batches_commands(service_factory, monkeypatch, capsys):
    service = service_factory(faults=Faults(request_error_rate=1.0, seed=1))
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", service.base_url)
    job = submit(frame(3), service, name="cli")
    job.wait(poll_interval=0.05, timeout=60)
    service.set_faults(Faults())
    assert main(["retry", "cli", "--error-type", "invalid_request_error"]) == 0
    assert "nothing to retry" in capsys.readouterr().out  # the injected errors are api_error
    assert main(["retry", "cli"]) == 0 and "3 row(s) resubmitted" in capsys.readouterr().out
    job.wait(poll_interval=0.05, timeout=60)
    with anthropic.Anthropic(base_url=service.base_url, api_key=KEY) as sdk:
        orphan = sdk.messages.batches.create(requests=[{"custom_id": "x", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}}]).id
    assert main(["batches", "--orphans"]) == 0
    out = capsys.readouterr().out
    assert orphan in out and job.batch_ids()[0] not in out
    assert main(["cancel", "cli"]) == 0 and "cli: ended" in capsys.readouterr().out
    assert main(["delete", "cli", "--local"]) == 0
    out = capsys.readouterr().out
    assert "local files removed" in out and all(b in out for b in job.batch_ids())
    assert [b["id"] for b in service_batches(service)] == [orphan]
