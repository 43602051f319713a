"""DataFrame -> provider-neutral requests: prompts and templates, per-row parameters, attachments, row
keys, the shard plan (sizes in, ranges out) and the fingerprint. Pure: no network, no disk."""
