"""How many tasks each of some jobs holds, counted on the (job-id, _id) index and never past a bound: what the
GraphQL cost budget (graphql_schema.cost_budget) reads to cost a job's whole-job lists by the job's real size.

Each job is counted with a limit (`count_documents(limit=...)`: MongoDB stops at the limit), so a count reads at
most `at_most` index keys whatever the job's size, and never a document for a caller allowed every job (a scoped
caller's count reads the documents too: whether a job-id is an array is not in the index, models.scopes); the
jobs are counted one after the other (a document names at most TRACKING_GRAPHQL_MAX_ALIASES + 1 jobs by id)."""

from __future__ import annotations

from collections.abc import Collection

from models.storage import Storage


async def count_job_tasks(storage: Storage, job_ids: Collection[str], at_most: int) -> dict[str, int]:
    """Each job's number of tasks, by job id, counting stops at `at_most` (a job with more shows `at_most`)."""
    return {
        job_id: await storage.tasks.count_documents(storage.of_job(job_id), limit=at_most)
        for job_id in sorted(set(job_ids))
    }
