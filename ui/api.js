// The gateway's public API as the live view uses it: GraphQL over POST /graphql and the graphql-transport-ws
// subscription. The credential comes from /static/token.js (trackingToken), shared by every page of the gateway:
// an API token (X-Auth-Token), or the bearer token of a sign-in (/static/sign-in.js), renewed before it expires.

import { byId } from "./dom.js";

export class Unauthorized extends Error {}

const REFUSED = 4403, EXPIRED = 4401; // the gateway's WebSocket close codes for a credential it does not admit

/** The answer's `data` (any: its shape is the query's, which the tests validate against the schema); any
 *  error in it is thrown (Unauthorized for a refused token).
 *  @param {string} query @param {Record<string, unknown>} [variables] @returns {Promise<any>} */
export async function gql(query, variables = {}) {
  const body = await gqlAnswer(query, variables);
  if (body.errors?.length) throw new Error(body.errors.map((error) => error.message).join("; "));
  return body.data;
}

/** The whole answer, `{ data, errors }`: for queries whose nullable fields may be refused alone (the rest of
 *  the data still answered); Unauthorized for a refused token.
 *  @param {string} query @param {Record<string, unknown>} [variables] @returns {Promise<GraphQLAnswer>} */
export async function gqlAnswer(query, variables = {}) {
  if (trackingToken.signedIn() && !(await trackingSignIn.fresh())) {
    throw new Unauthorized("your sign-in has expired: sign in again");
  }
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...tokenHeader() },
    body: JSON.stringify({ query, variables }),
  });
  if (response.status === 401) throw new Unauthorized("the sign-in was refused: sign in again");
  if (response.status === 403) throw new Unauthorized("the token was refused");
  return response.json();
}

/** The token's header, none without a token (forgotten while a read was on its way): never the text "null".
 *  @returns {Record<string, string>} */
function tokenHeader() {
  return trackingToken.headers();
}

/** A graphql-transport-ws subscription that starts after `start.after` (a cursor taken before the view read
 *  what it shows: Query.eventCursor), reconnects after a disconnect and resumes after the last event it
 *  delivered, so nothing is missed or repeated. When MongoDB no longer holds that point (CURSOR_EXPIRED) it
 *  takes a fresh cursor (`start.freshCursor()`), calls `start.onRestart()` to read the view again, and goes on
 *  from there. When the gateway refuses the credential (closes with 4403: unknown, revoked or without the
 *  scope; or 4401, expired, once a sign-in cannot be renewed) it ends and calls `start.onRefused` with an
 *  Unauthorized: trying again with the same credential would be refused again, for good.
 *  Returns a function that ends it. The header's mark says whether events can flow (see `liveMark`).
 *  @param {string} query @param {Record<string, unknown>} variables @param {(event: any) => void} onEvent
 *  @param {{ after: string | null, freshCursor(): Promise<string | null>, onRestart(): void,
 *            onRefused(error: Unauthorized): void }} start
 *  @returns {() => void} */
export function subscribe(query, variables, onEvent, start) {
  /** @type {WebSocket | null} */
  let socket = null; // the one open or opening now
  let after = start.after, retryMs = 500, ended = false;
  let ready = Promise.resolve(); // a reconnect waits for it: a fresh cursor being taken
  const mark = liveMark();
  const connect = () => {
    if (ended) return; // ended while a reconnect waited: it must not open a subscription for a page left
    const opened = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
      "graphql-transport-ws");
    socket = opened;
    let acked = false, failed = false;
    /** Live only once events can flow: the handshake needs no MongoDB, so an ack proves nothing; a MongoDB read
     *  answered after the subscription started (or an event delivered) does. Only then is the back-off reset:
     *  an ack followed at once by a failure must not make the page retry every 500 ms. */
    const confirmed = () => {
      if (opened !== socket || failed || ended) return;
      mark.live();
      retryMs = 500;
    };
    /** @param {string} reason */
    const fail = (reason) => {
      failed = true;
      mark.down(reason);
    };
    opened.onopen = () => opened.send(JSON.stringify({ type: "connection_init", payload: tokenHeader() }));
    opened.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "connection_ack") {
        acked = true;
        opened.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables: { ...variables, after } } }));
        start.freshCursor().then(confirmed, (/** @type {Error} */ error) => {
          if (opened !== socket || failed) return;
          fail(error.message);
          opened.close(); // it would fail the same way: tried again after the back-off
        });
      } else if (data.type === "ping") {
        opened.send(JSON.stringify({ type: "pong" }));
      } else if (data.type === "next" && data.payload.data) {
        const event = data.payload.data.taskEvents;
        after = event.cursor;
        confirmed();
        onEvent(event);
      } else if (data.type === "next" || data.type === "error") {
        /** @type {GraphQLError[]} */
        const errors = data.payload.errors || data.payload;
        if (errors.some((error) => error.extensions?.code === "CURSOR_EXPIRED")) {
          after = null; // without a fresh cursor (none could be taken), from whenever it subscribes again
          ready = start.freshCursor().then((cursor) => { after = cursor; }, () => {}).then(() => start.onRestart());
        } else {
          fail(errors.map((error) => error.message).join("; "));
        }
        opened.close();
      } else if (data.type === "complete") {
        opened.close();
      }
    };
    opened.onclose = (closed) => {
      if (ended) return;
      if (closed.code === REFUSED) return refused(new Unauthorized(`the token was refused (${closed.reason || "unknown"})`));
      if (!failed) fail(acked ? "the subscription ended" : "the gateway is not answering");
      // A signed-in token is renewed first (the gateway ends a connection when its token expires).
      setTimeout(() => ready.then(() => trackingSignIn.fresh()).then((held) => {
        if (held || closed.code !== EXPIRED) return connect();
        refused(new Unauthorized("your sign-in has expired: sign in again"));
      }, connect), retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  };
  /** @param {Unauthorized} error */
  const refused = (error) => {
    ended = true;
    mark.hide();
    start.onRefused(error);
  };
  connect();
  return () => { ended = true; socket?.close(); mark.hide(); };
}

/** The header's mark: "● live" while events can flow; otherwise since when they cannot and why (the page shows
 *  what it read before then), so a person knows how old what they see may be.
 *  @returns {{ live(): void, down(reason: string): void, hide(): void }} */
function liveMark() {
  const mark = byId("live", HTMLElement);
  /** @type {Date | null} */
  let since = null; // when it stopped being live; null while live (or before it ever was)
  /** @param {"on" | "down" | ""} state @param {string} text @param {string} title */
  const show = (state, text, title) => {
    mark.hidden = false;
    mark.classList.toggle("on", state === "on");
    mark.classList.toggle("down", state === "down");
    mark.textContent = text;
    mark.title = title;
  };
  show("", "○ connecting", "connecting to the live updates");
  return {
    live() {
      since = null;
      show("on", "● live", "live updates from the subscription");
    },
    down(reason) {
      since ??= new Date();
      const time = since.toLocaleTimeString();
      const text = reason.startsWith(MONGODB_UNAVAILABLE) ? `○ MongoDB unavailable since ${time}`
        : `○ not live since ${time}: ${clipped(reason, REASON_SHOWN)}`;
      show("down", text, `no live updates since ${time}: what is shown was read before then; reconnecting (${reason})`);
    },
    hide() { mark.hidden = true; },
  };
}

const MONGODB_UNAVAILABLE = "MongoDB unavailable"; // the start of the gateway's UNAVAILABLE message
const REASON_SHOWN = 120; // characters of an error in the header (the whole of it is in the mark's title)

/** `action` (returning a promise) run after a call, at most once every `ms` and never two at a time: a call
 *  while it runs runs it once more when it is done, so the last call is always followed by a complete run.
 *  Unlike a debounce (which restarts its timer on every call), a steady stream of calls still runs it.
 *  @param {() => Promise<unknown>} action @param {number} ms @returns {() => void} */
export function throttled(action, ms) {
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  let running = false, again = false, last = -Infinity;
  const run = async () => {
    timer = null;
    running = true;
    again = false;
    last = performance.now();
    try { await action(); } finally { running = false; if (again) schedule(); }
  };
  const schedule = () => {
    again = true;
    if (timer !== null || running) return;
    timer = setTimeout(run, Math.max(0, last + ms - performance.now()));
  };
  return schedule;
}

/** `value` as text in HTML (an attribute's or an element's): & < > " ' written as character references.
 *  @param {unknown} value */
export function esc(value) {
  return String(value).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** The one rule for text shown bounded (names, statuses, errors): the first `most` characters of `text` (whole characters, never half an emoji), with "…" when it had more.
 *  @param {unknown} value @param {number} most */
export function clipped(value, most) {
  const text = String(value);
  if (text.length <= most) return text;
  const chars = Array.from(text.slice(0, 2 * most)); // 2 * most code units hold at least `most` characters
  return chars.length > most || text.length > 2 * most ? `${chars.slice(0, most).join("")}…` : text;
}
