"""Showing a job: one text renderer (CLI and text bar), the tqdm bar, the monitor thread and the widget.

Importing this package registers the bar :meth:`batchframe.Job.wait` draws and the Jupyter display of a
``Job`` (:mod:`batchframe.jobs.views`), so the job layer never imports UI code.
"""

from batchframe.jobs.views import register_views
from batchframe.progress.bar import CountProgress, TextProgress
from batchframe.progress.widget import display_job

register_views(bar=lambda name, total: TextProgress(name, total=total), display=display_job,
               tally=lambda label, total: CountProgress(label, total=total))
