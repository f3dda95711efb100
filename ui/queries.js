// Every GraphQL document the live view sends, in one place: the pages import them from here, and the tests
// import them too (tests/helpers.py runs node on this module), so what is tested is what the page sends.
// Plain text: operation names and variables are the page's contract with the gateway's schema.

/** Tasks in a page of the big-job table (Job.taskPage's `first`). */
export const TASKS_PAGE = 100;

/** The fields of the selected task shown in its details, in this order. */
export const DETAIL_FIELDS = ["name", "status", "type", "jobId", "root", "description", "startTime", "finishTime",
  "creationTimestamp", "updateTimestamp", "workflow", "executionCode", "executionDescription", "runningStatus"];

const LINKED = "{ id name status }";
const AROUND = "{ id name status startTime finishTime nexts { id } }";

/** The jobs page: a page of jobs, newest activity first, and the statuses that count as done. */
export const JOBS = `query Jobs($first: Int!, $after: String, $filter: JobFilter) {
  jobs(first: $first, after: $after, filter: $filter) {
    edges { node { id taskCount statusCounts { status count } summary { progress lastUpdate } } }
    pageInfo { hasNextPage endCursor } }
  doneStatuses }`;

/** A job's counts and progress, above its graph or table. */
export const JOB_HEAD = `query Job($id: String!) { job(id: $id) { id taskCount statusCounts { status count }
  summary { doneCount progress lastUpdate durationMs firstStart } } doneStatuses }`;

/** A job's graph. criticalPath is null with its error (GRAPH_CYCLE: a cycle a tool wrote into the links) while
 *  the graph is answered. */
export const JOB_GRAPH = `query Graph($id: String!) { job(id: $id) { tasks { id name status startTime finishTime } edges { from to }
  criticalPath { id } } }`;

/** A page of the big-job table, filtered. */
export const TASK_PAGE = `query Page($id: String!, $after: String, $status: [String!], $statusNot: [String!], $name: String,
  $depth: Int) { job(id: $id) { taskPage(first: ${TASKS_PAGE}, after: $after, status: $status, statusNot: $statusNot,
  name: $name, depth: $depth) {
  edges { node { id name status type updateTimestamp } } pageInfo { hasNextPage endCursor } } } }`;

/** A big job's overview by stage. */
export const LEVELS = `query Levels($id: String!) { job(id: $id) { levels { depth count blockedCount
  statusCounts { status count } } } }`;

/** The selected task: its fields, what blocks it, its links and its history (the newest changes, and whether
 *  older ones were left out). */
export const DETAILS = `query Details($id: ID!) { task(id: $id) { id ${DETAIL_FIELDS.join(" ")}
  blockedBy(transitive: true) ${LINKED} previous ${LINKED} nexts ${LINKED}
  history { at kind changedFields status } historyTruncated } }`;

/** The drill-down: a task's ancestors and descendants to a depth. */
export const NEIGHBOURHOOD = `query Neighbourhood($id: ID!, $depth: Int!) { task(id: $id) { id name status startTime
  finishTime nexts { id } ancestors(maxDepth: $depth) ${AROUND} descendants(maxDepth: $depth) ${AROUND} } }`;

/** The point a job's subscription starts after, taken before the page's first read. */
export const CURSOR = `query Cursor($job: String) { eventCursor(jobId: $job) }`;

/** A job's changes, live. */
export const EVENTS = `subscription Events($job: String!, $after: String) { taskEvents(jobId: $job, after: $after) {
  kind taskId cursor changedFields task { id name status } } }`;
