// The types the live view's modules share (named in their JSDoc) and the globals its page's classic scripts
// define, for the type check alone (`make test` runs tsc over jsconfig.json): never served, never shipped.

import type * as d3Selection from "d3-selection";
import type * as d3Zoom from "d3-zoom";

declare global {
  /** d3-selection and d3-zoom, from the vendored scripts index.html loads before the modules. */
  const d3: typeof d3Selection & typeof d3Zoom;

  /** The credential every page of the gateway shares (gateway/static/token.js). */
  const trackingToken: {
    KEY: string;
    BEARER_KEY: string;
    takeFromLink(): void;
    signedIn(): { token: string; expiresAt: number; refreshToken: string | null } | null;
    bearer(): string | null;
    get(): string | null;
    set(token: string): void;
    setBearer(held: { token: string; expiresAt: number; refreshToken: string | null }): void;
    held(): boolean;
    headers(): Record<string, string>;
    forget(): void;
  };

  /** "Sign in" with the gateway's identity provider (gateway/static/sign-in.js). */
  const trackingSignIn: {
    settings(): Promise<{ clientId: string; issuer: string; scope: string; token: string } | null>;
    start(returnTo?: string): Promise<void>;
    fresh(): Promise<boolean>;
  };

  /** An error of a GraphQL answer (its code in `extensions.code`, the field it refused in `path`). */
  interface GraphQLError {
    message: string;
    path?: (string | number)[];
    extensions?: { code?: string };
  }

  /** A GraphQL answer: `data` (any: its shape is the query's, which the tests validate) and the errors. */
  interface GraphQLAnswer {
    data?: any;
    errors?: GraphQLError[];
  }

  /** How many tasks have a status (null: none), as Job.statusCounts and Job.levels count them. */
  interface StatusCount {
    status: string | null;
    count: number;
  }

  /** A job as the jobs list reads it (Query.jobs). */
  interface JobRow {
    id: string;
    taskCount: number;
    statusCounts: StatusCount[];
    summary: { progress: number; lastUpdate: string | null };
  }

  /** A task as the graph reads it (Query.job.tasks, the neighbourhood's tasks, an event's task). */
  interface GraphTask {
    id: string;
    name?: string | null;
    status?: string | null;
    startTime?: string | null;
    finishTime?: string | null;
  }

  /** What drawGraph draws: the tasks, the links between them (by id) and the critical path (empty: none). */
  interface GraphJob {
    tasks: GraphTask[];
    edges: { from: string; to: string }[];
    criticalPath: { id: string }[];
  }

  /** A job's tasks as the graph holds them: by position (the layout's and the scene's index), and by id. */
  interface Graph {
    tasks: GraphTask[];
    index: Map<string, number>;
    /** The position of a task known to be in the graph. */
    at(id: string): number;
    /** The links between two tasks of the graph. */
    links: { from: string; to: string }[];
    /** Whether a task has a start time (a critical path is shown only then). */
    timed: boolean;
    /** The positions of the tasks of `ids` that are in the graph. */
    indices(ids: string[]): Set<number>;
  }

  /** The elements of the graph's markup that the view wires. */
  interface GraphParts {
    canvas: GraphCanvas;
    minimap: HTMLCanvasElement;
    tip: HTMLDivElement;
    tools: HTMLDivElement;
    goto: HTMLFormElement;
    typed: HTMLInputElement;
    note: HTMLSpanElement;
    filter: HTMLSelectElement;
  }

  /** A graph as drawn: what its controls, its handle and its graphView share. */
  interface Drawn {
    container: HTMLElement;
    graph: Graph;
    layout: Layout;
    critical: Set<number>;
    state: GraphState;
    scene: Scene;
    view: Viewport;
    parts: GraphParts;
    onSelect: OnSelect;
    /** The list's buttons by task id (null above LIST_LIMIT tasks). */
    buttons: Map<string, HTMLButtonElement> | null;
    /** True while the focus is given back after a redraw: focusing a task then leaves the view where it is. */
    refocusing: boolean;
  }

  /** The layout worker's answer (graph-layout-worker.js), and which links lie on the critical path. */
  interface Layout {
    x: Float64Array;
    y: Float64Array;
    rank: Int32Array;
    width: number;
    height: number;
    points: Float64Array;
    starts: Int32Array;
    onPath?: boolean[];
  }

  /** The part of the layout in view, in layout units. */
  interface Seen {
    left: number;
    top: number;
    right: number;
    bottom: number;
  }

  /** The view's transform: screen = layout * k + (x, y). */
  interface Transform {
    x: number;
    y: number;
    k: number;
  }

  /** What the canvas marks, by task index (-1: none). */
  interface Marks {
    selected: number;
    blocking: Set<number>;
    focused: number;
  }

  /** What the scene reads at each frame: the marks, the status not dimmed (null: none dimmed) and whether a
   *  task has a start time (the critical path is starred only then). */
  interface GraphState extends Marks {
    dim: string | null;
    timed: boolean;
  }

  interface Scene {
    frames: number[];
    dimmed(i: number): boolean;
    draw(now?: boolean): void;
    move(next: Transform): void;
    changed(i?: number | null): void;
    hit(wx: number, wy: number): number;
  }

  interface Viewport {
    fit(): void;
    zoomBy(factor: number): void;
    centre(x: number, y: number): void;
    show(x: number, y: number): void;
    world(event: MouseEvent): [number, number];
    client(x: number, y: number): { x: number; y: number };
    rect(): { x: number; y: number; width: number; height: number };
    kept(): Transform | null;
  }

  /** The control that had the keyboard focus before a redraw, and the caret of a text field. */
  interface Focus {
    selector: string;
    caret: [number, number] | null;
  }

  /** The last "go to task": Go again with the same text goes to its next match. */
  interface Search {
    wanted: string;
    at: number;
  }

  /** What a redraw keeps of the graph it replaces. */
  interface Kept {
    transform: Transform | null;
    dim: string;
    typed: string;
    focus: Focus | null;
    search: Search | null;
  }

  type OnSelect = (taskId: string, options?: { centre?: boolean }) => void;

  /** A task of the drill-down (Query.task with its ancestors and descendants to a depth). */
  interface HoodTask extends GraphTask {
    nexts: { id: string }[];
    ancestors: (GraphTask & { nexts: { id: string }[] })[];
    descendants: (GraphTask & { nexts: { id: string }[] })[];
  }

  /** What showNeighbourhood resolves to: the drill-down's answers to the job page. */
  interface Neighbourhood {
    taskId: string;
    mark(selectedId: string, blockingIds: string[]): void;
    paint(task: GraphTask): void;
    centre(taskId: string): void;
    close(): void;
  }

  /** A row of the timeline: a stage's heading, or a task with a start time (finish null: running). */
  type TimelineRow = { stage: number } | TaskRow;
  interface TaskRow {
    task: GraphTask;
    start: number;
    finish: number | null;
  }

  /** A job's timeline in a container (timeline.js): drawn again by `update`, keeping its window. */
  interface Timeline {
    root: HTMLElement;
    update(job: GraphJob): void;
    mark(taskId: string, reveal: boolean): void;
  }

  /** A job's head (Query.job: its counts and progress). */
  interface JobHead {
    id: string;
    taskCount: number;
    statusCounts: StatusCount[];
    summary: { doneCount: number; progress: number; lastUpdate: string | null; durationMs: number | null; firstStart: string | null };
  }

  /** A stage of a big job (Job.levels). */
  interface Level {
    depth: number;
    count: number;
    blockedCount: number;
    statusCounts: StatusCount[];
  }

  /** An event of the job's subscription (Subscription.taskEvents). */
  interface TaskEvent {
    kind: string;
    taskId: string;
    cursor: string;
    changedFields: string[];
    task: GraphTask | null;
  }

  /** The selected task's details (Query.task with DETAIL_FIELDS, its links and history). */
  interface TaskDetails extends GraphTask {
    [field: string]: unknown;
    blockedBy: GraphTask[];
    previous: GraphTask[];
    nexts: GraphTask[];
    history: { at: string; kind: string; changedFields: string[]; status: string | null }[];
    /** Whether older changes than `history`'s were left out (TRACKING_GRAPHQL_MAX_HISTORY). */
    historyTruncated: boolean;
  }

  /** A row of the big-job table (Job.taskPage's nodes). */
  interface TaskRowNode extends GraphTask {
    type: string | null;
    updateTimestamp: string | null;
  }

  /** Where a page of a connection ends (Relay's PageInfo). */
  interface PageInfo {
    hasNextPage: boolean;
    endCursor: string | null;
  }

  /** The table that replaces the graph of a big job (job.js taskTable). */
  interface TaskTable {
    refresh(): Promise<void>;
    refreshSoon(): void;
    offer(statusCounts: StatusCount[]): void;
    recountLevels(): void;
    mark(taskId: string | null): void;
  }

  /** A job's page (job.js showJob): what is shown, and the answers still on their way must check `closed`. */
  interface JobPage {
    jobId: string;
    /** The column that holds the graph, the timeline or the big-job table. */
    column: HTMLElement;
    /** The Graph and Timeline tabs (hidden over GRAPH_LIMIT tasks). */
    tabs: HTMLElement;
    /** Job.levels asked for on opening the page, before the job's size is known; the table uses it once. */
    firstLevels: Promise<Level[] | Error> | null;
    failed(error: Error): void;
    /** A read succeeded: the error shown by `failed` goes. */
    recovered(): void;
    view: string;
    graph: GraphHandle | null;
    table: TaskTable | null;
    hood: Neighbourhood | null;
    tasks: Map<string, GraphTask>;
    selected: string | null;
    noPath: string | null;
    loading: boolean;
    closed: boolean;
    /** Whether the job had tasks since the page opened: "none any more" rather than "none yet". */
    hadTasks: boolean;
    select: OnSelect;
  }

  /** What drawGraph resolves to. */
  interface GraphHandle {
    critical: boolean;
    canvas: GraphCanvas;
    paint(task: GraphTask): void;
    mark(selectedId: string, blockingIds: string[]): void;
    centre(taskId: string): void;
    reveal(taskId: string): void;
    fit(): void;
    released(): Promise<void>;
    kept(): Kept;
    dim(status: string | null): void;
  }

  /** What is on screen, for the tests and the bench (`canvas.graphView`). */
  interface GraphView {
    view(): { x: number; y: number; width: number; height: number };
    at(taskId: string): { x: number; y: number } | null;
    marks(): { selected: string | null; blocking: string[]; dimmed: number; critical: string[] };
    tasks: number;
    links: number;
    frames: number[];
  }

  type GraphCanvas = HTMLCanvasElement & { graphView?: GraphView };
}
