"""Jobs at fleet scale: MongoDB aggregations over the `tasks` indexes, never a job loaded into Python.

- listing.py: a page of jobs, newest activity first, read at one snapshot however jobs change meanwhile;
- summaries.py: counts, status counts and times of any number of jobs in one `$group`;
- levels.py: a job's stages counted by status, from every task's links and status only;
- sizes.py: how many tasks some jobs hold, counted on the index up to a bound (the GraphQL cost budget's);
- reads.py: JobReads, the reads of whole jobs (the above, a job's tasks, task pages, critical path);
- queries.py: JobQueries, those reads as the graph store's methods, bounded by the deadline.

The names the front ends and bench use are exported here.
"""

from models.jobs.levels import LEVELS_BOUND_FACTOR, JobLevel, JobStages
from models.jobs.listing import JOBS_INDEX, JobFilter, JobListing, JobPosition, JobsPage, jobs_pipeline
from models.jobs.summaries import JobSummary, ProjectedJob, job_duration_ms, job_progress, summaries_pipeline

__all__ = [
    "JOBS_INDEX",
    "LEVELS_BOUND_FACTOR",
    "JobFilter",
    "JobLevel",
    "JobListing",
    "JobPosition",
    "JobStages",
    "JobSummary",
    "JobsPage",
    "ProjectedJob",
    "job_duration_ms",
    "job_progress",
    "jobs_pipeline",
    "summaries_pipeline",
]
