import { expect, it } from "vitest";
import { eventually, sleep, startDemo, type DemoProcess } from "../demo-process";
import { LoadGenerator, OPEN_FLAGS, Observer, cleanUp, preload, sequence, settle, viewsOn, waitForLine, workerPid, type Scope, type Tab, type View } from "./truth";

/**
 * Each block's length, in turn (each worker's fixture cycles through them):
 * 20 to 300 ms, and one past the cluster store's 1 s announce deadline, after
 * which the primary hands what the blocked worker was to announce to the other.
 */
const BLOCKS_MS = [20, 60, 150, 300, 1200];
/** Users whose last tab closes on the blocked worker in each round. */
const MOVERS = 3;
/** Each worker is blocked in every other round: both go through every length, and every phase. */
const ROUNDS = 10;
const SEED = Number(process.env.FAULTS_SEED ?? 20);

/**
 * The demo's primary hands each new connection to the worker with the fewest
 * (sticky's least-connection), by the count each worker reports. To open a
 * tab on a chosen worker the test makes the other one heavier, with ballast
 * users' tabs (each user its own, so that its "user has connected" or "user
 * has disconnected" shows when its worker has reported the tab open or closed).
 */
class Steering {
  readonly #ballast: Tab[] = [];
  #made = 0;

  constructor(
    readonly load: LoadGenerator,
    readonly demo: DemoProcess,
    readonly observer: Observer,
  ) {}

  /** Our connections per worker (every connection the demo has is ours). */
  count(worker: number): number {
    return [...this.load.tabs].filter((tab) => tab.worker === worker).length;
  }

  /** Makes `light` hold at least `by` fewer connections than `heavy`, as the primary counts them. */
  async lighten(light: number, heavy: number, by: number): Promise<void> {
    // enough ballast on both workers first: new tabs go to the lighter one, so they spread
    for (let opened = 0; this.#on(light).length < by + 2 || this.#on(heavy).length < 2; opened++) {
      if (opened > 40) throw new Error(`could not spread ballast over workers ${light} and ${heavy}`);
      const tab = await this.load.open(`ballast-${this.#made++}`, this.demo.url);
      this.#ballast.push(tab);
      await this.#reported([tab.userId], true);
    }
    const closed: string[] = [];
    while (this.count(heavy) - this.count(light) < by) {
      const tab = this.#on(light)[0];
      if (!tab) throw new Error(`no ballast left on worker ${light} (${this.count(light)} there, ${this.count(heavy)} on ${heavy})`);
      this.#ballast.splice(this.#ballast.indexOf(tab), 1);
      // the transport itself: its worker tells the primary the connection ended (sticky's count) before
      // it tells the store (the view's leave). A DISCONNECT packet would end the Socket.IO connection first,
      // and the Engine.IO one, which sticky counts, only later
      this.load.close(tab, { abrupt: true });
      closed.push(tab.userId);
    }
    await this.#reported(closed, false);
  }

  #on(worker: number): Tab[] {
    return this.#ballast.filter((tab) => tab.connected && tab.worker === worker);
  }

  /**
   * Waits until the observer hears these users come (or go): their worker
   * told the primary of the connection (or of its end) before it told the
   * store, both over its one IPC channel, in order, so the primary counts it.
   */
  #reported(userIds: string[], online: boolean): Promise<void> {
    return eventually(
      () => {
        const wrong = userIds.filter((userId) => (this.observer.online(userId) ?? false) !== online);
        if (wrong.length > 0) throw new Error(`${wrong.join(", ")} not heard ${online ? "connecting" : "leaving"}`);
      },
      10_000,
      `the ballast ${online ? "opened" : "closed"} reported`,
    );
  }
}

it(
  "a busy worker: users' last tabs close on a worker while its event loop is blocked 20-300 ms and they reopen on the other; observers' last events say online, every view lists them",
  { timeout: 120_000 },
  async () => {
    let demo: DemoProcess | undefined;
    const views: View[] = [];
    let load: LoadGenerator | undefined;
    try {
      // no leave grace: each close is a store call at once, so the blocked worker decides and announces in the race
      demo = await startDemo(["--mode", "cluster", "--workers", "2", ...OPEN_FLAGS, "--leave-delay-ms", "0"], {
        ...preload("worker-id.mjs", "busy-worker.mjs"),
        PRESENCE_TEST_BUSY_MS: BLOCKS_MS.join(","),
      });
      const url = demo.url;
      load = new LoadGenerator(() => url);

      // a viewer on each worker (the first two tabs go one to each), members of "general", holding every scope and observing the events
      const movers = Array.from({ length: MOVERS }, (_, i) => `mover-${i}`);
      const scopes: Scope[] = [{ type: "all" }, { type: "room", room: "general" }, { type: "users", userIds: [...movers, "never-online"] }, { type: "count" }];
      const observers: Observer[] = [];
      const viewerTabs: Tab[] = [];
      for (let i = 0; i < 2; i++) {
        const tab = await load.open(`viewer-${i}`, url, { rooms: ["general"] });
        viewerTabs.push(tab);
        views.push(...viewsOn(`viewer-${i}`, tab, scopes));
        observers.push(new Observer(`viewer-${i}`, tab.socket));
      }
      const workers = viewerTabs.map((tab) => tab.worker!);
      expect(new Set(workers).size, "the two viewers are on the two workers").toBe(2);
      const expectation = { load, views, observers, observedUsers: movers, observedRooms: ["general"] };
      await settle("the viewers' views", expectation, { quietMs: 0 });

      const steering = new Steering(load, demo, observers[0]!);
      // the movers start on the first worker
      let from = workers[0]!;
      let to = workers[1]!;
      await steering.lighten(from, to, 1);
      for (const userId of movers) {
        await steering.lighten(from, to, 1);
        const tab = await load.open(userId, url, { rooms: movers.indexOf(userId) % 2 === 0 ? ["general"] : [] });
        expect(tab.worker, `${userId}'s first tab`).toBe(from);
        await eventually(() => expect(observers[0]!.online(userId)).toBe(true), 10_000, `${userId} heard connecting`);
      }

      const next = sequence(SEED);
      const log: string[] = [];
      let reopenedWhileBlocked = 0;
      const breaks: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // every reopen must go to `to`, which the primary must count as the lighter throughout: `from` may
        // report the movers' closes before its block (down by MOVERS) while `to` reports the reopens (up by MOVERS)
        await steering.lighten(to, from, 2 * MOVERS + 1);
        const before = `worker ${from}: ${steering.count(from)}, worker ${to}: ${steering.count(to)}`;
        const pid = workerPid(demo, from);
        const mark = demo.output.length;
        const moving = movers.map((userId) => load!.tabsOf(userId)[0]!);
        const close = () => {
          for (const tab of moving) load!.close(tab);
        };
        // where the block lands: before the closes arrive; just after them (the worker may be deciding or
        // announcing the leaves, or not have read them yet); or a few ms after
        const phase = round % 3;
        if (phase === 0) {
          process.kill(pid, "SIGUSR2");
          await waitForLine(demo, new RegExp(`^presence-test: busy ${pid} `), mark, `worker ${from} (pid ${pid}) blocked`);
          close();
        } else {
          close();
          if (phase === 2) await sleep(1 + next(8));
          process.kill(pid, "SIGUSR2");
        }
        const reopened = await Promise.all(moving.map((tab) => load!.open(tab.userId, url, { rooms: [...tab.rooms] })));
        const busyLine = await waitForLine(demo, new RegExp(`^presence-test: busy ${pid} `), mark, `worker ${from} (pid ${pid}) blocked`);
        const stillBlocked = !demo.output.slice(busyLine).some((line) => line === `presence-test: free ${pid}`);
        if (stillBlocked) reopenedWhileBlocked++;
        await waitForLine(demo, new RegExp(`^presence-test: free ${pid}$`), mark, `worker ${from} (pid ${pid}) free again`);
        for (const tab of reopened) expect(tab.worker, `round ${round}: ${tab.userId} reopened on the other worker (before the round: ${before}; after: ${steering.count(from)} and ${steering.count(to)})`).toBe(to);
        const blockMs = demo.output[busyLine]!.split(" ").at(-1);
        log.push(`${blockMs} ms/phase ${phase}`);
        const settled = await settle(`round ${round} (worker ${from} blocked ${blockMs} ms, phase ${phase})`, expectation, { withinMs: 10_000, quietMs: 500 }).catch((error: Error) => {
          const histories = observers.flatMap((observer) =>
            [...observer.history].filter(([key]) => key.includes("mover-")).map(([key, events]) => `${observer.name} ${key}: ${events.slice(-4).join(", ")}`),
          );
          throw new Error(`${error.message}\nthe observers' last events of the movers:\n  ${histories.join("\n  ")}`, { cause: error });
        });
        breaks.push(...settled.breaks.map((problem) => `round ${round}: ${problem}`));
        [from, to] = [to, from];
      }

      await settle("every view and observer after the busy rounds", expectation, { withinMs: 10_000, quietMs: 2000 });
      for (const observer of observers) {
        for (const userId of movers) {
          expect(observer.online(userId), `${observer.name}'s last event for ${userId}`).toBe(true);
          expect(typeof observer.last.get(`u:${userId}`)?.version, `${observer.name}: ${userId}'s events carry versions`).toBe("number");
        }
      }
      for (const view of views) if (view.scope.type !== "count") expect(view.seen(), view.label).toEqual(expect.arrayContaining(view.scope.type === "room" ? ["mover-0", "mover-2"] : movers));
      // an agreement reached while the blocked worker's announcements were still on their way, then undone by them
      // (and made again by the changes after them, in the decider's order): allowed, and shown
      if (breaks.length > 0) console.log(`busy worker: agreements undone by changes still on their way:\n  ${breaks.join("\n  ")}`);
      console.log(
        `busy worker: ${ROUNDS} rounds (${log.join(", ")}); ${reopenedWhileBlocked} with every reopen connected while the worker was still blocked; ` +
          `one observer heard ${[...observers[0]!.leaves.entries()].filter(([u]) => u.startsWith("mover")).map(([u, n]) => `${u} leave ×${n}`).join(", ") || "no mover leave"}`,
      );
    } finally {
      await cleanUp(load, views, [demo]);
    }
  },
);
