import { fileURLToPath, pathToFileURL } from "node:url";
import { createPresenceClient, type PresenceClient } from "@presence/client";
import { RESYNC } from "@presence/core/protocol";
import { io as connect, type ManagerOptions, type Socket as ClientSocket, type SocketOptions } from "socket.io-client";
import { TEST_SECRET, eventually, login, sleep, type DemoProcess } from "../demo-process";

/**
 * The system-level proofs of "what people see equals the truth": a load
 * generator that records which connections it holds open (and which rooms
 * the server acknowledged for each), views (`@presence/client`) and
 * observers (the per-user events) on the real demo, and checks that compare
 * every view and every observer's last event with the generator's record,
 * never with `/api/presence`.
 */

/** The flags every test here gives the demo: its limits off (one test machine is one address), a shared secret. */
export const OPEN_FLAGS = ["--secret", TEST_SECRET, "--rate-limit", "0", "--login-rate-limit", "0", "--max-connections-per-user", "0"];

/**
 * The env that preloads test fixtures (`apps/demo/test/fixtures/*.mjs`) into
 * a demo process and, inherited, its workers. With `PRESENCE_TEST_MUTANT` set
 * (see `fixtures/mutant.mjs`) it preloads that mutant too: a way to watch a
 * proof fail when the rule it proves is broken.
 */
export function preload(...fixtures: string[]): { NODE_OPTIONS: string } {
  const names = process.env.PRESENCE_TEST_MUTANT ? [...fixtures, "mutant.mjs"] : fixtures;
  const files = names.map((name) => pathToFileURL(fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))).href);
  return { NODE_OPTIONS: files.map((file) => `--import=${file}`).join(" ") };
}

/** A client that comes back as browsers do. */
export const RECONNECTING: Partial<ManagerOptions & SocketOptions> = {
  reconnection: true,
  reconnectionDelay: 50,
  reconnectionDelayMax: 200,
};

export interface TabOptions extends Partial<ManagerOptions & SocketOptions> {
  /** Rooms the tab joins, and joins again after every reconnect. */
  rooms?: string[];
  /**
   * Connect again when the server disconnects the tab (`"io server
   * disconnect"`), which socket.io-client never does on its own: at once
   * (`true`) or after this many ms. Each time is recorded in
   * `serverDisconnects`.
   */
  reconnectOnServerDisconnect?: boolean | number;
}

/** One connection the generator holds: a browser tab. */
export class Tab {
  /** Rooms the server acknowledged since the last connect. */
  readonly joined = new Set<string>();
  /** Every disconnect's reason, in order. */
  readonly disconnects: string[] = [];
  /** How many times the server disconnected this tab (`"io server disconnect"`). */
  serverDisconnects = 0;
  /** The longest time this tab spent disconnected before it connected again, ms (to tell who came back within a grace). */
  longestGapMs = 0;
  /** Room joins the server refused or did not answer. */
  readonly joinErrors: string[] = [];
  /** How many times the server told this socket's views to read their state again. */
  resyncs = 0;
  closed = false;
  #disconnectedAt: number | undefined;

  constructor(
    readonly userId: string,
    readonly socket: ClientSocket,
    readonly rooms: ReadonlySet<string>,
    reconnectOnServerDisconnect: boolean | number,
  ) {
    socket.on("connect", () => {
      if (this.#disconnectedAt !== undefined) this.longestGapMs = Math.max(this.longestGapMs, Date.now() - this.#disconnectedAt);
      this.#disconnectedAt = undefined;
      for (const room of rooms) void this.#join(room);
    });
    socket.on(RESYNC, () => this.resyncs++);
    socket.on("disconnect", (reason) => {
      this.joined.clear();
      this.disconnects.push(reason);
      if (this.closed) return;
      this.#disconnectedAt = Date.now();
      if (reason === "io server disconnect") {
        this.serverDisconnects++;
        if (reconnectOnServerDisconnect === true) socket.connect();
        else if (typeof reconnectOnServerDisconnect === "number") {
          setTimeout(() => {
            if (!this.closed) socket.connect();
          }, reconnectOnServerDisconnect);
        }
      }
    });
  }

  get connected(): boolean {
    return !this.closed && this.socket.connected;
  }

  /** The cluster worker that holds this connection: a session id starts with its worker's id (the demo's sticky patch). */
  get worker(): number | undefined {
    const id = this.socket.io.engine?.id;
    return this.socket.connected && id ? parseInt(id.slice(0, 4), 36) : undefined;
  }

  /** Whether every room this tab wants is acknowledged on its current connection. */
  get settled(): boolean {
    return this.connected && [...this.rooms].every((room) => this.joined.has(room));
  }

  async #join(room: string): Promise<void> {
    const socket = this.socket;
    try {
      const answer = (await socket.timeout(5000).emitWithAck("room:join", room)) as { ok: boolean; error?: string };
      if (answer.ok) {
        // acknowledged on the connection it was sent on, not on a later one
        if (socket.connected) this.joined.add(room);
      } else this.joinErrors.push(`${this.userId}: room:join ${room} refused: ${answer.error}`);
    } catch (error) {
      if (socket.connected && !this.closed) this.joinErrors.push(`${this.userId}: room:join ${room}: ${(error as Error).message}`);
    }
  }
}

/**
 * The load generator: opens and closes users' tabs, and is the one record of
 * the truth the views and events must end at: a user is online while one of
 * their tabs is connected, and in a room while one of their connected tabs
 * has the server's acknowledgement of its join.
 */
export class LoadGenerator {
  readonly tabs = new Set<Tab>();
  readonly #tokens = new Map<string, Promise<string>>();

  /** `loginUrl` answers `/api/login` (any instance: the secret is the deployment's). */
  constructor(readonly loginUrl: () => string) {}

  token(userId: string): Promise<string> {
    let token = this.#tokens.get(userId);
    if (!token) {
      token = login(this.loginUrl(), userId);
      this.#tokens.set(userId, token);
      token.catch(() => this.#tokens.delete(userId));
    }
    return token;
  }

  /** Opens a tab and waits until it is connected and in its rooms. */
  async open(userId: string, url: string, options: TabOptions = {}): Promise<Tab> {
    const { rooms = [], reconnectOnServerDisconnect = false, ...socketOptions } = options;
    const socket = connect(url, {
      auth: { token: await this.token(userId) },
      forceNew: true,
      reconnection: false,
      transports: ["websocket"],
      ...socketOptions,
    });
    const tab = new Tab(userId, socket, new Set(rooms), reconnectOnServerDisconnect);
    this.tabs.add(tab);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${userId}'s tab on ${url} did not connect within 10 s`)), 10_000);
        socket.once("connect", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once("connect_error", (error) => {
          clearTimeout(timer);
          reject(new Error(`${userId}'s tab on ${url}: connect_error ${error.message}`));
        });
      });
      await eventually(() => {
        if (tab.joinErrors.length > 0) throw new Error(tab.joinErrors.join("; "));
        if (!tab.settled) throw new Error(`${userId}'s tab is in ${[...tab.joined].join(", ") || "no room"} of ${rooms.join(", ")}`);
      }, 10_000, `${userId}'s room joins`);
    } catch (error) {
      this.close(tab);
      throw error;
    }
    return tab;
  }

  /**
   * Opens a tab on the cluster worker `worker` (by the session id), retrying
   * while the primary sends it elsewhere: it sends each new connection to the
   * worker with the fewest, so this is for a worker that has the fewest (a
   * fresh one).
   */
  async openOnWorker(userId: string, url: string, worker: number, options: TabOptions = {}, withinMs = 20_000): Promise<Tab> {
    return eventually(
      async () => {
        const tab = await this.open(userId, url, options);
        const landed = tab.worker;
        if (landed === worker) return tab;
        this.close(tab);
        throw new Error(`${userId}'s tab landed on worker ${landed}`);
      },
      withinMs,
      `a tab of ${userId} on worker ${worker}`,
    );
  }

  /**
   * Closes a tab as a page does (`socket.close()`: a DISCONNECT packet, then
   * the transport). With `abrupt`, the transport alone closes, as when a
   * browser tab is killed: the server sees the Socket.IO and the Engine.IO
   * connection end at the same moment.
   */
  close(tab: Tab, { abrupt = false } = {}): void {
    tab.closed = true;
    if (abrupt) tab.socket.io.engine?.close();
    tab.socket.close();
    this.tabs.delete(tab);
  }

  closeAll(): void {
    for (const tab of [...this.tabs]) this.close(tab);
  }

  /** The users online now: those with a connected tab. */
  online(): string[] {
    return unique([...this.tabs].filter((tab) => tab.connected).map((tab) => tab.userId));
  }

  /** The users in `room` now. */
  inRoom(room: string): string[] {
    return unique([...this.tabs].filter((tab) => tab.connected && tab.joined.has(room)).map((tab) => tab.userId));
  }

  /** Every room join any tab had refused or unanswered. */
  joinErrors(): string[] {
    return [...this.tabs].flatMap((tab) => tab.joinErrors);
  }

  tabsOf(userId: string): Tab[] {
    return [...this.tabs].filter((tab) => tab.userId === userId);
  }
}

const unique = (values: string[]) => [...new Set(values)].sort();

/** What a view follows. */
export type Scope = { type: "all" } | { type: "room"; room: string } | { type: "users"; userIds: string[] } | { type: "count" };

const describeScope = (scope: Scope) =>
  scope.type === "room" ? `room ${scope.room}` : scope.type === "users" ? `users [${scope.userIds.join(", ")}]` : scope.type;

/** One `@presence/client` on a tab's socket. */
export class View {
  readonly client: PresenceClient;
  readonly errors: string[] = [];

  constructor(
    readonly name: string,
    readonly tab: Tab,
    readonly scope: Scope,
  ) {
    this.client = createPresenceClient(
      tab.socket,
      scope.type === "room" ? { room: scope.room } : scope.type === "users" ? { userIds: scope.userIds } : scope.type === "count" ? { countOnly: true } : {},
    );
    this.client.on("error", (error) => this.errors.push(`${error.code}/${error.reason}: ${error.message}`));
  }

  get label(): string {
    return `${this.name} (${describeScope(this.scope)})`;
  }

  /** What the view shows: the users, or the count. */
  seen(): string[] | number {
    return this.scope.type === "count" ? this.client.count : this.client.list().map((user) => user.userId).sort();
  }

  /** What it must show, by the generator's record. */
  expected(load: LoadGenerator): string[] | number {
    const online = load.online();
    switch (this.scope.type) {
      case "all":
        return online;
      case "room":
        return load.inRoom(this.scope.room);
      case "users": {
        const followed = new Set(this.scope.userIds);
        return online.filter((userId) => followed.has(userId));
      }
      case "count":
        return online.length;
    }
  }

  close(): void {
    this.client.close();
  }
}

/** Opens one view of each scope on a tab's socket. */
export function viewsOn(name: string, tab: Tab, scopes: Scope[]): View[] {
  return scopes.map((scope) => new View(name, tab, scope));
}

const key = (room: string | undefined, userId: string) => (room === undefined ? `u:${userId}` : `r:${room} ${userId}`);

/**
 * The per-user events one socket receives: the last one per user (and per
 * room member), every leave, and any event whose version is not newer than
 * the one before it for the same user on the same connection (the decider's
 * order, which every node must keep).
 */
export class Observer {
  /** Per user (`u:<id>`) and room member (`r:<room> <id>`): whether the last event said present, and its version. */
  readonly last = new Map<string, { present: boolean; version: number | undefined }>();
  readonly leaves = new Map<string, number>();
  readonly joins = new Map<string, number>();
  readonly outOfOrder: string[] = [];
  /** Every event, per user and room member, for failure messages: `"left" v123 (+456 ms)`. */
  readonly history = new Map<string, string[]>();
  readonly #started = Date.now();
  /** Versions heard on the current connection (a reconnect may reach a node that is behind the last one). */
  #versions = new Map<string, number>();

  constructor(
    readonly name: string,
    readonly socket: ClientSocket,
  ) {
    socket.on("connect", () => (this.#versions = new Map()));
    socket.on("user has connected", (userId: string, _info: unknown, version?: number) => this.#heard("connected", undefined, userId, true, version));
    socket.on("user has disconnected", (userId: string, version?: number) => this.#heard("disconnected", undefined, userId, false, version));
    socket.on("user has joined", (room: string, userId: string, _info: unknown, version?: number) => this.#heard("joined", room, userId, true, version));
    socket.on("user has left", (room: string, userId: string, version?: number) => this.#heard("left", room, userId, false, version));
  }

  /** Whether the last event said this user is online (`undefined`: no event yet). */
  online(userId: string): boolean | undefined {
    return this.last.get(key(undefined, userId))?.present;
  }

  inRoom(room: string, userId: string): boolean | undefined {
    return this.last.get(key(room, userId))?.present;
  }

  #heard(event: string, room: string | undefined, userId: string, present: boolean, version: number | undefined): void {
    const k = key(room, userId);
    const previous = this.#versions.get(k);
    if (typeof version === "number") {
      if (previous !== undefined && version <= previous) {
        this.outOfOrder.push(`${this.name}: "${event}" ${room === undefined ? "" : `${room} `}${userId} v${version} after v${previous}`);
      }
      this.#versions.set(k, Math.max(version, previous ?? version));
    }
    this.last.set(k, { present, version });
    const history = this.history.get(k) ?? [];
    history.push(`"${event}" v${version} (+${Date.now() - this.#started} ms)`);
    this.history.set(k, history);
    if (room !== undefined) return;
    const counts = present ? this.joins : this.leaves;
    counts.set(userId, (counts.get(userId) ?? 0) + 1);
  }
}

/** What a set of views and observers must agree with. */
export interface Expectation {
  load: LoadGenerator;
  views: View[];
  observers?: Observer[];
  /**
   * The users whose events the observers must have heard in full: those who
   * first connected after every observer did (absent from an observer's
   * events means offline).
   */
  observedUsers?: string[];
  /** The rooms whose join and leave events the observers receive (they are members since before the observed users came). */
  observedRooms?: string[];
}

/**
 * Throws, naming every view and observer that disagrees with the
 * generator's record right now. Every view must hold a state (`synced`),
 * unless `rereading` allows one to be reading it again (`subscribing`): the
 * server asks for that when a node went silent (a restart, a kill), and the
 * view keeps what it shows meanwhile, which must still be the truth.
 */
export function checkAgreement({ load, views, observers = [], observedUsers = [], observedRooms = [] }: Expectation, { rereading = false } = {}): void {
  const problems: string[] = [];
  const joinErrors = load.joinErrors();
  if (joinErrors.length > 0) problems.push(`room joins failed: ${joinErrors.join("; ")}`);
  for (const view of views) {
    const state = view.client.state;
    if (state !== "subscribed" && !(rereading && state === "subscribing")) {
      problems.push(`${view.label} is ${state}${view.errors.length ? ` (${view.errors.at(-1)})` : ""}`);
    }
    const seen = view.seen();
    const expected = view.expected(load);
    if (JSON.stringify(seen) !== JSON.stringify(expected)) problems.push(`${view.label} shows ${show(seen)}, the truth is ${show(expected)}`);
  }
  const online = new Set(load.online());
  for (const observer of observers) {
    for (const userId of observedUsers) {
      const said = observer.online(userId) ?? false;
      if (said !== online.has(userId)) {
        const last = observer.last.get(key(undefined, userId));
        problems.push(
          `${observer.name}'s last event for ${userId} says ${said ? "online" : "offline"}${last ? ` (v${last.version})` : " (none)"}, the truth is ${online.has(userId) ? "online" : "offline"}; ` +
            `its last events: ${observer.history.get(key(undefined, userId))?.slice(-4).join(", ") ?? "none"}`,
        );
      }
    }
    for (const room of observedRooms) {
      const members = new Set(load.inRoom(room));
      for (const userId of observedUsers) {
        const said = observer.inRoom(room, userId) ?? false;
        if (said !== members.has(userId)) {
          problems.push(
            `${observer.name}'s last event for ${userId} in ${room} says ${said ? "in" : "out"}, the truth is ${members.has(userId) ? "in" : "out"}; ` +
              `its last events: ${observer.history.get(key(room, userId))?.slice(-4).join(", ") ?? "none"}`,
          );
        }
      }
    }
    if (observer.outOfOrder.length > 0) problems.push(`events out of the decider's order: ${observer.outOfOrder.join("; ")}`);
  }
  if (problems.length > 0) throw new Error(`${problems.length} disagreement(s):\n  ${problems.join("\n  ")}`);
}

const show = (value: string[] | number) => (typeof value === "number" ? String(value) : `[${value.join(", ")}]`);

/** What a quiet period saw: agreements that broke before it was over, and checks that saw a view reading its state again. */
export interface Settled {
  /** Each time the agreement broke within a quiet period (the first line of what disagreed), before one held throughout. */
  breaks: string[];
  rereading: number;
}

/**
 * Waits until every view and observer agrees with the truth and goes on
 * agreeing, checked every 50 ms, for `quietMs` on end: a moment of agreement
 * is not enough. A first agreement may come while changes are still on
 * their way (a blocked worker's announcements, a leave after a grace): when
 * the agreement breaks, the wait starts again, and the break is recorded.
 * What never comes right within `withinMs` (a stale event that stays last, a
 * view that stays wrong) fails, and so does any event out of its decider's
 * order (recorded by the observers, it never goes away). A view the server
 * asks to read its state again meanwhile must go on showing the truth while
 * it reads, and hold its state again at the end.
 */
export async function settle(what: string, expectation: Expectation, { withinMs = 15_000, quietMs = 1500 } = {}): Promise<Settled> {
  const deadline = Date.now() + withinMs;
  const settled: Settled = { breaks: [], rereading: 0 };
  for (;;) {
    await eventually(() => checkAgreement(expectation), Math.max(0, deadline - Date.now()), `${what}${settled.breaks.length ? ` (it held, then broke, ${settled.breaks.length} times: the last, ${settled.breaks.at(-1)})` : ""}`);
    const until = Date.now() + quietMs;
    let broke: string | undefined;
    while (broke === undefined && Date.now() < until) {
      await sleep(50);
      try {
        checkAgreement(expectation, { rereading: true });
      } catch (error) {
        broke = (error as Error).message.split("\n")[1]?.trim() ?? (error as Error).message;
      }
      if (expectation.views.some((view) => !view.client.synced)) settled.rereading++;
    }
    if (broke === undefined) break;
    settled.breaks.push(broke);
    if (Date.now() > deadline) throw new Error(`${what}: never held for ${quietMs} ms within ${withinMs} ms; it broke ${settled.breaks.length} times, the last: ${broke}`);
  }
  if (settled.rereading > 0) await eventually(() => checkAgreement(expectation), withinMs, `${what}, after views read their state again`);
  return settled;
}

/** Closes every view's client and every process given, whatever state they are in. */
export async function cleanUp(load: LoadGenerator | undefined, views: View[], processes: Array<DemoProcess | undefined>): Promise<void> {
  for (const view of views) view.close();
  load?.closeAll();
  for (const demo of processes) {
    if (!demo) continue;
    await demo.stop("SIGTERM");
  }
}

/** Picks one of `values`, from a seeded sequence: runs differ in their interleavings, not in their steps. */
export function sequence(seed: number): (n: number) => number {
  let state = seed >>> 0 || 1;
  return (n) => {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % n;
  };
}

/** The pid of a cluster worker by its id, from the `worker-id.mjs` fixture's line (the newest: a restarted worker gets a new id). */
export function workerPid(demo: DemoProcess, workerId: number): number {
  for (let i = demo.output.length - 1; i >= 0; i--) {
    const match = /^presence-test: worker (\d+) pid (\d+)$/.exec(demo.output[i]!);
    if (match && Number(match[1]) === workerId) return Number(match[2]);
  }
  throw new Error(`no worker ${workerId} in the demo's output (started without the worker-id.mjs fixture?)`);
}

/** The ids of the workers that printed their start, newest last. */
export function workerIds(demo: DemoProcess): number[] {
  return demo.output.flatMap((line) => {
    const match = /^presence-test: worker (\d+) pid \d+$/.exec(line);
    return match ? [Number(match[1])] : [];
  });
}

/**
 * Waits for a line of the demo's output matching `pattern`, printed at or
 * after line `from`; resolves with its index as soon as it arrives (checked on
 * every chunk the demo writes, not polled: a block of 20 ms must not be over
 * before the test knows it began).
 */
export function waitForLine(demo: DemoProcess, pattern: RegExp, from: number, what: string, withinMs = 10_000): Promise<number> {
  const streams = [demo.child.stdout!, demo.child.stderr!];
  return new Promise((resolve, reject) => {
    const find = () => {
      const index = demo.output.findIndex((line, i) => i >= from && pattern.test(line));
      if (index < 0) return;
      done();
      resolve(index);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: no line matching ${pattern} within ${withinMs} ms`));
    }, withinMs);
    // after readline's own listener (registered first), which has pushed the chunk's lines by then
    const done = () => {
      clearTimeout(timer);
      for (const stream of streams) stream.off("data", find);
    };
    for (const stream of streams) stream.on("data", find);
    find();
  });
}
