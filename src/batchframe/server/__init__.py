"""The local Message Batches service (``batchframe serve``): the Anthropic wire protocol, state in SQLite."""
