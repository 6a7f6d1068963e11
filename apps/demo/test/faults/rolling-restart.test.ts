import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, startDemo, type DemoProcess } from "../demo-process";
import { TcpBalancer } from "./balancer";
import { TIMING } from "./deployment";
import {
  LoadGenerator,
  OPEN_FLAGS,
  Observer,
  RECONNECTING,
  cleanUp,
  preload,
  sequence,
  settle,
  viewsOn,
  waitForLine,
  workerIds,
  workerPid,
  type Scope,
  type Tab,
  type View,
} from "./truth";

/** The demo's default leave grace (the binding's, and the cluster primary's for a dead or stopping worker). */
const GRACE_MS = 2000;
const USERS = 16;
/** How often the views are sampled while processes restart. */
const SAMPLE_MS = 20;
const SEED = Number(process.env.FAULTS_SEED ?? 23);

/**
 * Samples every view while processes restart and records each moment one of
 * them misses a user who stays (a reconnecting user), or its count is below
 * theirs: a view must never dip, not just end right.
 */
class DipRecorder {
  readonly dips: string[] = [];
  samples = 0;
  #timer: NodeJS.Timeout | undefined;
  #during = "the start";
  readonly #everSynced = new WeakSet<View>();

  constructor(
    readonly views: View[],
    readonly staying: () => string[],
    readonly inRoom: () => string[],
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  during(what: string): void {
    this.#during = what;
  }

  sample(): void {
    this.samples++;
    const staying = this.staying();
    const members = new Set(this.inRoom());
    for (const view of this.views) {
      // a view that never held a state shows nothing yet: it is not a dip
      if (view.client.synced) this.#everSynced.add(view);
      if (!this.#everSynced.has(view)) continue;
      const seen = view.seen();
      if (typeof seen === "number") {
        if (seen < staying.length) this.dips.push(`${view.label} counted ${seen} < ${staying.length} during ${this.#during}`);
        continue;
      }
      const listed = new Set(seen);
      const missing = staying.filter((userId) => follows(view.scope, userId, members) && !listed.has(userId));
      if (missing.length > 0) this.dips.push(`${view.label} missed ${missing.join(", ")} during ${this.#during}`);
    }
  }
}

/** Whether a view of `scope` must list `userId` while they are online (`members`: the room's). */
function follows(scope: Scope, userId: string, members: Set<string>): boolean {
  switch (scope.type) {
    case "room":
      return members.has(userId);
    case "users":
      return scope.userIds.includes(userId);
    default:
      return true;
  }
}

interface Scenario {
  /** Restarts one process at a time; calls `during` before each. */
  restart(during: (what: string) => void, balancer: TcpBalancer): Promise<void>;
}

/**
 * Users and viewers connected through a TCP balancer, reconnecting as
 * browsers do; the processes behind it restart one at a time. No user who
 * came back within the grace is ever announced leaving, no view ever dips,
 * and everything ends at the truth.
 */
async function rollingRestart(scenario: Scenario, load: LoadGenerator, views: View[], balancer: TcpBalancer): Promise<void> {
  // connections come back on their own (transport closed), or when a server's shutdown disconnects them
  // ("io server disconnect", which socket.io-client never retries): counted, then reconnected as a page would.
  // Each tab waits its own time before it tries, from 50 ms to 1.2 s: some come back late in the grace
  const next = sequence(SEED);
  const resilient = () => {
    const delayMs = 50 + next(1151);
    return { ...RECONNECTING, reconnectionDelay: delayMs, reconnectionDelayMax: delayMs, randomizationFactor: 0, reconnectOnServerDisconnect: delayMs };
  };
  const scopes: Scope[] = [{ type: "all" }, { type: "room", room: "general" }, { type: "users", userIds: ["user-0", "user-5", "viewer-1", "never-online"] }, { type: "count" }];
  const observers: Observer[] = [];
  const observe = (tab: Tab) => observers.push(new Observer(`${tab.userId}'s tab`, tab.socket));
  for (let i = 0; i < 4; i++) {
    const tab = await load.open(`viewer-${i}`, balancer.url, { ...resilient(), rooms: ["general"] });
    views.push(...viewsOn(`viewer-${i}`, tab, scopes));
    observe(tab);
  }
  for (let i = 0; i < USERS; i++) observe(await load.open(`user-${i}`, balancer.url, { ...resilient(), rooms: i % 2 ? [] : ["general"] }));
  const everyone = load.online();
  const expectation = { load, views, observers };
  await settle("the views before the restarts", expectation, { quietMs: 500 });

  const recorder = new DipRecorder(views, () => everyone, () => everyone.filter((userId) => load.tabsOf(userId).some((tab) => tab.rooms.has("general"))));
  recorder.start();
  try {
    await scenario.restart((what) => recorder.during(what), balancer);
    recorder.during("the end");
    const { rereading } = await settle("the views after the restarts", expectation, { withinMs: 15_000, quietMs: 2000 });
    if (rereading > 0) console.log(`rolling restart: views read their state again (a node gone silent) during ${rereading} checks of the quiet period, showing the truth throughout`);
  } finally {
    recorder.stop();
  }

  const tabs = [...load.tabs].filter((tab) => everyone.includes(tab.userId));
  // who came back within the grace must be silent; anyone slower is left out, and named
  const slow = tabs.filter((tab) => tab.longestGapMs >= GRACE_MS).map((tab) => `${tab.userId} (${tab.longestGapMs} ms away)`);
  if (slow.length > 0) console.log(`back after the grace, not held to silence: ${slow.join(", ")}`);
  const silent = everyone.filter((userId) => load.tabsOf(userId).every((tab) => tab.longestGapMs < GRACE_MS));
  const leaves = observers.flatMap((observer) => silent.flatMap((userId) => (observer.leaves.get(userId) ? [`${observer.name} heard ${userId} leave ×${observer.leaves.get(userId)}`] : [])));
  const reconnects = tabs.reduce((sum, tab) => sum + tab.disconnects.length, 0);
  const serverDisconnects = tabs.filter((tab) => tab.serverDisconnects > 0).map((tab) => tab.userId);
  console.log(
    `rolling restart: ${reconnects} disconnects of ${tabs.length} tabs, every one back; ${recorder.samples} samples of ${views.length} views; ` +
      `${leaves.length} leave events for users back within the grace; ${recorder.dips.length} dips; ${serverDisconnects.length} tabs told "io server disconnect"; ` +
      `${balancer.refused} connections refused by a backend; ${tabs.reduce((sum, tab) => sum + tab.resyncs, 0)} resync frames to the tabs`,
  );
  expect(reconnects, "the restarts disconnected every tab at least once").toBeGreaterThanOrEqual(tabs.length);
  expect(silent.length, "users held to silence").toBeGreaterThan(0);
  expect.soft(leaves, `"user has disconnected" for users back within the ${GRACE_MS} ms grace`).toEqual([]);
  expect.soft(recorder.dips.slice(0, 20), "moments a view missed a user who was coming back").toEqual([]);
  // a shutdown that says "io server disconnect" tells a browser not to come back (the demo's page says "reload the page")
  expect.soft(serverDisconnects, `tabs a restarting server told not to reconnect ("io server disconnect")`).toEqual([]);
}

describe("rolling restart through a TCP load balancer", () => {
  let redis: RedisServer | undefined;
  let balancer: TcpBalancer | undefined;
  let load: LoadGenerator | undefined;
  const views: View[] = [];
  const processes: DemoProcess[] = [];
  afterEach(async () => {
    await cleanUp(load, views.splice(0), processes.splice(0));
    await balancer?.close();
    await redis?.stop();
    redis = balancer = load = undefined;
  });

  it("redis mode, two instances: each stopped with SIGTERM and started again in turn; nobody back within the grace is announced leaving, no view dips", { timeout: 120_000 }, async () => {
    redis = await startRedisServer();
    const flags = [
      "--mode", "redis", "--workers", "2", "--redis-url", redis.url, ...OPEN_FLAGS,
      "--heartbeat-ms", String(TIMING.heartbeatMs), "--lease-timeout-ms", String(TIMING.leaseTimeoutMs),
    ];
    processes.push(...(await Promise.all([startDemo(flags, preload()), startDemo(flags, preload())])));
    balancer = await TcpBalancer.start(processes.map((demo) => demo.port));
    load = new LoadGenerator(() => processes[0]!.url);
    await rollingRestart(
      {
        async restart(during, lb) {
          for (let i = 0; i < 2; i++) {
            const old = processes[i]!;
            // a tab on the instance that keeps running, straight to it (no balancer, no reconnection): nothing may touch it
            const bystander = await load!.open(`bystander-${i}`, processes[1 - i]!.url);
            during(`the restart of instance ${i}`);
            await old.stop("SIGTERM");
            const fresh = await startDemo(flags, preload());
            processes[i] = fresh;
            lb.backends = lb.backends.map((port) => (port === old.port ? fresh.port : port));
            await everyTabBack(load!, (tab) => !tab.userId.startsWith("bystander-"));
            expect.soft(bystander.disconnects, `a tab on instance ${1 - i}, which kept running, while instance ${i} stopped`).toEqual([]);
          }
        },
      },
      load,
      views,
      balancer,
    );
  });

  it("cluster mode: each worker stopped with SIGTERM in turn (the primary forks another); nobody back within the grace is announced leaving, no view dips", { timeout: 120_000 }, async () => {
    const demo = await startDemo(["--mode", "cluster", "--workers", "2", ...OPEN_FLAGS], preload("worker-id.mjs"));
    processes.push(demo);
    balancer = await TcpBalancer.start([demo.port]);
    load = new LoadGenerator(() => demo.url);
    let probes = 0;
    await rollingRestart(
      {
        async restart(during, lb) {
          for (const id of workerIds(demo).slice(0, 2)) {
            const pid = workerPid(demo, id);
            const mark = demo.output.length;
            during(`the restart of worker ${id} (pid ${pid})`);
            process.kill(pid, "SIGTERM");
            await waitForLine(demo, new RegExp(`^worker ${pid} died`), mark, `the primary saw worker ${id} (pid ${pid}) exit`);
            const index = await waitForLine(demo, /^presence-test: worker \d+ pid \d+$/, mark, `a worker forked in place of worker ${id}`);
            const replacement = Number(/worker (\d+)/.exec(demo.output[index]!)![1]);
            // ready once the primary routes to it: an empty worker gets the next connection
            const probe = await load!.openOnWorker(`probe-${probes++}`, lb.url, replacement);
            load!.close(probe);
            await everyTabBack(load!);
          }
        },
      },
      load,
      views,
      balancer,
    );
  });
});

/** Waits until every tab (that `which` picks) is connected again and back in its rooms. */
function everyTabBack(load: LoadGenerator, which: (tab: Tab) => boolean = () => true): Promise<void> {
  return eventually(
    () => {
      const away = [...load.tabs].filter((tab) => which(tab) && !tab.settled).map((tab) => tab.userId);
      if (away.length > 0) throw new Error(`not back: ${away.join(", ")}`);
    },
    15_000,
    "every tab reconnected and in its rooms",
  );
}
