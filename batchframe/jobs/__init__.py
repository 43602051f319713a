"""The on-disk job and its state machine: the store, the manifest and its shard states, sending (persist
then POST), harvesting, resubmitting failed rows, deleting, the one poll loop and the catalog of jobs.

This layer never imports UI code: a Job's notebook display is registered by :mod:`batchframe.progress`.
"""
