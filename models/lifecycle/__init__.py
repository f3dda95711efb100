"""The data lifecycle of whole jobs: archive to a file (archiving.py), restore from it (restoring.py), and purge
jobs nobody changed for a while (purging.py), over what they share (job_data.py). The archive file and the
reports are models.archive.
"""

from models.lifecycle.archiving import Archiving
from models.lifecycle.purging import DEFAULT_PURGE_BATCH, Purging
from models.lifecycle.restoring import Restoring

__all__ = ["DEFAULT_PURGE_BATCH", "Lifecycle"]


class Lifecycle(Archiving, Restoring, Purging):
    """Archive, restore and purge over one database (models.lifecycle.job_data.JobData)."""
