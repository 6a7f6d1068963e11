import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Transition } from "@presence/core";
import { sleep, waitFor } from "@presence/core/testing";
import { afterEach, expect, it } from "vitest";

// Randomized histories against a model, on a real Node cluster: a primary
// (setupPrimary) and three workers each running one ClusterStore
// (test/fixtures/store-workers.mjs), driven over the primary's stdin and
// stdout. The test keeps its own record of which connections are open (and
// in which rooms) and derives, phase by phase, the joins and leaves the
// cluster must announce. Each step sends a batch of calls (one per user)
// and, while they are outstanding, injects at most one fault: a worker
// killed (SIGKILL; some of its users' tabs reopen on another worker within
// the leave grace, which must hide their leave), a worker stopped (SIGSTOP)
// past its announce deadline or for less, or the primary stopped past the
// calls' timeout (their answers come late; the test retries as the binding
// does). At quiescence every announcement, merged in version order, must
// equal the derived transitions per user and per room (none lost, none
// doubled, none out of order), and every store's answers equal the record.
// The one documented double (a worker killed in the middle of a run of
// several transitions: the rest are handed on, and it may have announced
// some) is accepted only from a killed announcer, with the same version.
// CLUSTER_HISTORY_PROCESS_SEEDS=50 runs a long one; CLUSTER_HISTORY_PROCESS_FIRST_SEED picks the first.
const fixture = fileURLToPath(new URL("./fixtures/store-workers.mjs", import.meta.url));
const SEEDS = Number(process.env.CLUSTER_HISTORY_PROCESS_SEEDS ?? 3);
const FIRST_SEED = Number(process.env.CLUSTER_HISTORY_PROCESS_FIRST_SEED ?? 1);
const STEPS = Number(process.env.CLUSTER_HISTORY_PROCESS_STEPS ?? 14);
const TIMING = { LEAVE_GRACE_MS: 1200, ANNOUNCE_TIMEOUT_MS: 500, TIMEOUT_MS: 600 };
const WORKERS = 3;
const USERS = ["u0", "u1", "u2", "u3", "zoë", "用户"];
const ROOMS = ["r0", "部屋"];

/** mulberry32, so that a failing seed can be replayed. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Line {
  id?: number;
  result?: unknown;
  error?: string;
  message?: string;
  transition?: Transition;
  slot?: number;
  instance?: number;
  event?: "exit";
}

interface Heard {
  transition: Transition;
  instance: number;
  at: number;
}

/** Awaits `work`, failing with `what` after `timeoutMs`. */
async function within<T>(what: string, work: Promise<T>, timeoutMs = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`waited ${timeoutMs} ms for ${what}`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The primary process and its workers, as the test drives them. */
class Cluster {
  readonly primary: ChildProcess;
  readonly heard: Heard[] = [];
  clock = 0;
  /** Slot -> the instance (worker id) and pid running in it. */
  readonly slots: Array<{ instance: number; pid: number; exited: boolean }> = [];
  readonly #pending = new Map<number, { slot: number | undefined; answer: (line: Line) => void }>();
  #nextId = 0;

  constructor() {
    this.primary = spawn(process.execPath, [fixture], { env: { ...process.env, WORKERS: String(WORKERS), ...Object.fromEntries(Object.entries(TIMING).map(([k, v]) => [k, String(v)])) }, stdio: ["pipe", "pipe", "inherit"] });
    this.primary.stdin!.on("error", () => {});
    createInterface({ input: this.primary.stdout! }).on("line", (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        return;
      }
      if (line.transition) this.heard.push({ transition: line.transition, instance: line.instance!, at: this.clock });
      if (line.event === "exit") {
        const slot = this.slots[line.slot!];
        if (slot !== undefined && slot.instance === line.instance) slot.exited = true;
        for (const [id, pending] of this.#pending) {
          if (pending.slot === line.slot && slot?.instance === line.instance) {
            this.#pending.delete(id);
            pending.answer({ error: "KILLED" });
          }
        }
      }
      if (line.id !== undefined) {
        this.#pending.get(line.id)?.answer(line);
        this.#pending.delete(line.id);
      }
    });
  }

  get outstanding(): number {
    return this.#pending.size;
  }

  send(slot: number | undefined, op: string, ...args: unknown[]): Promise<Line> {
    const id = this.#nextId++;
    return new Promise<Line>((answer) => {
      this.#pending.set(id, { slot: op === "fork" ? undefined : slot, answer });
      this.primary.stdin!.write(`${JSON.stringify({ id, slot, op, args })}\n`);
    });
  }

  async ask<T>(what: string, slot: number | undefined, op: string, ...args: unknown[]): Promise<T> {
    const line = await within(what, this.send(slot, op, ...args));
    if (line.error) throw new Error(`${what}: ${line.error} ${line.message ?? ""}`);
    return line.result as T;
  }

  async fork(slot: number): Promise<void> {
    const { instance, pid } = await this.ask<{ instance: number; pid: number }>(`a worker in slot ${slot}`, slot, "fork");
    this.slots[slot] = { instance, pid, exited: false };
  }

  async stop(): Promise<void> {
    if (this.primary.exitCode !== null || this.primary.signalCode !== null) return;
    const exited = once(this.primary, "exit");
    this.primary.kill("SIGCONT");
    for (const slot of this.slots) if (!slot.exited) process.kill(slot.pid, "SIGCONT");
    this.primary.stdin!.end();
    await within("the primary to exit", exited, 10_000).catch(() => this.primary.kill("SIGKILL"));
  }
}

interface Connection {
  id: string;
  userId: string;
  rooms: Set<string>;
  slot: number;
  counted: boolean;
}

type Op =
  | { kind: "connect"; connection: Connection }
  | { kind: "disconnect"; connection: Connection }
  | { kind: "join" | "leave"; connection: Connection; room: string }
  | { kind: "updateInfo"; connection: Connection; n: number };

const keyOf = (t: Transition) => (t.type === "joined" || t.type === "left" ? `${t.room}|${t.userId}` : t.userId);
const isJoin = (t: Transition) => t.type === "connected" || t.type === "joined";

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function runSeed(seed: number): Promise<string> {
  const next = random(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const c = (cluster = new Cluster());
  for (let slot = 0; slot < WORKERS; slot++) await c.fork(slot);
  const record = new Map<string, Connection>();
  const expected = new Map<string, boolean[]>();
  let present = new Set<string>();
  const observe = () => {
    const counted = new Set<string>();
    for (const conn of record.values()) {
      if (!conn.counted) continue;
      counted.add(conn.userId);
      for (const room of conn.rooms) counted.add(`${room}|${conn.userId}`);
    }
    for (const key of counted) if (!present.has(key)) expected.set(key, [...(expected.get(key) ?? []), true]);
    for (const key of present) if (!counted.has(key)) expected.set(key, [...(expected.get(key) ?? []), false]);
    present = counted;
  };
  const apply = (op: Op) => {
    const conn = op.connection;
    if (op.kind === "connect") record.set(conn.id, conn);
    else if (op.kind === "disconnect") record.delete(conn.id);
    else if (op.kind === "join") conn.rooms.add(op.room);
    else if (op.kind === "leave") conn.rooms.delete(op.room);
  };
  const send = (op: Op): Promise<Line> => {
    const conn = op.connection;
    if (op.kind === "connect") return c.send(conn.slot, "connect", conn.id, conn.userId);
    if (op.kind === "disconnect") return c.send(conn.slot, "disconnect", conn.id);
    if (op.kind === "updateInfo") return c.send(conn.slot, "updateInfo", conn.userId, { n: op.n });
    return c.send(conn.slot, op.kind, conn.id, op.room);
  };
  /** Awaits the ops' answers; a call that timed out is made again, as the binding does (the same call gets the primary's first answer). */
  const settle = async (ops: Op[], replies: Array<Promise<Line>>) => {
    for (const [i, op] of ops.entries()) {
      let line = await within(`the answer to ${op.kind} ${op.connection.id} (seed ${seed})`, replies[i]!);
      for (let retry = 0; line.error === "STORE_UNAVAILABLE" && retry < 5; retry++) line = await within(`the retry of ${op.kind} ${op.connection.id} (seed ${seed})`, send(op));
      if (line.error) throw new Error(`seed ${seed}: ${op.kind} ${op.connection.id} failed: ${line.error} ${line.message ?? ""}`);
    }
  };
  const quiet = (what: string) =>
    waitFor(
      `${what} (seed ${seed})`,
      async () => {
        const state = await c.ask<{ pendingAnnouncements: number; storesInGrace: number }>("the primary's state", undefined, "state");
        if (state.pendingAnnouncements !== 0 || state.storesInGrace !== 0) throw new Error(`primary state ${JSON.stringify(state)}`);
      },
      20_000,
      25,
    );
  /** Worker instances killed, and the step: a run they were announcing may be heard twice in that step. */
  const faulted = new Map<number, number>();
  const injected: string[] = [];
  const trace: string[] = [];
  let ids = 0;

  for (let step = 0; step < STEPS; step++) {
    c.clock++;
    const users = [...USERS].sort(() => next() - 0.5).slice(0, 2 + Math.floor(next() * 3));
    const ops: Op[] = [];
    for (const userId of users) {
      const mine = [...record.values()].filter((conn) => conn.userId === userId);
      const roll = next();
      if (roll < 0.4 || mine.length === 0) {
        ops.push({ kind: "connect", connection: { id: `s${seed}c${ids++}`, userId, rooms: new Set(), slot: Math.floor(next() * WORKERS), counted: true } });
      } else {
        const connection = pick(mine);
        const room = pick(ROOMS);
        if (roll < 0.65) ops.push({ kind: "disconnect", connection });
        else if (roll < 0.9) ops.push({ kind: connection.rooms.has(room) ? "leave" : "join", connection, room });
        else ops.push({ kind: "updateInfo", connection, n: step });
      }
    }
    trace.push(`${c.clock}: ${ops.map((o) => `${o.kind}${"room" in o ? `:${o.room}` : ""} ${o.connection.id}=${o.connection.userId}@w${o.connection.slot}`).join(", ")}`);
    const fault = next();
    const target = Math.floor(next() * WORKERS);
    const replies = ops.map(send);
    const delay = Math.floor(next() * 4);
    if (delay > 0) await sleep(delay - 1);
    const inFlight = c.outstanding;
    const onTarget = ops.filter((o) => o.connection.slot === target);
    const elsewhere = ops.filter((o) => o.connection.slot !== target);

    if (fault < 0.2) {
      // SIGKILL a worker while its calls are in flight; some of its users reopen elsewhere within the grace
      const victim = c.slots[target]!;
      faulted.set(victim.instance, c.clock);
      process.kill(victim.pid, "SIGKILL");
      await waitFor(`worker ${victim.instance} to exit (seed ${seed})`, () => victim.exited, 10_000, 10);
      // the primary has read all the worker sent once its channel closed: it now holds what was applied
      await waitFor(
        `the primary to hear of the death (seed ${seed})`,
        async () => {
          const state = await c.ask<{ storesInGrace: number }>("the primary's state", undefined, "state");
          if (state.storesInGrace === 0 && [...record.values()].some((conn) => conn.slot === target)) throw new Error("no store in its grace yet");
        },
        10_000,
        10,
      );
      for (const op of onTarget) {
        const has = await c.ask<{ userId: string | null; rooms: string[] }>("the primary's record", undefined, "has", op.connection.id);
        const applied =
          op.kind === "connect" ? has.userId === op.connection.userId
          : op.kind === "disconnect" ? has.userId === null
          : op.kind === "join" ? has.rooms.includes(op.room)
          : op.kind === "leave" ? !has.rooms.includes(op.room)
          : true;
        if (applied) apply(op);
      }
      await settle(elsewhere, elsewhere.map((o) => replies[ops.indexOf(o)]!));
      elsewhere.forEach(apply);
      observe();
      // tabs that move: a new connection on another worker, within the grace
      const victims = [...new Set([...record.values()].filter((conn) => conn.slot === target).map((conn) => conn.userId))];
      const moving = victims.filter(() => next() < 0.5);
      const moves: Op[] = moving.map((userId) => ({ kind: "connect", connection: { id: `s${seed}c${ids++}`, userId, rooms: new Set(), slot: (target + 1 + Math.floor(next() * (WORKERS - 1))) % WORKERS, counted: true } }));
      await settle(moves, moves.map(send));
      moves.forEach(apply);
      observe();
      await quiet("the dead worker's grace to end and its leaves to be announced");
      for (const [id, conn] of record) if (conn.slot === target) record.delete(id);
      observe();
      await c.fork(target);
      injected.push(`step ${step}: SIGKILL w${target} (in flight ${inFlight}, ${onTarget.length} on it; ${moving.length} of ${victims.length} users moved within the grace)`);
    } else if (fault < 0.35) {
      const stopMs = next() < 0.5 ? 100 : TIMING.ANNOUNCE_TIMEOUT_MS + TIMING.TIMEOUT_MS + 200;
      const { pid } = c.slots[target]!;
      process.kill(pid, "SIGSTOP");
      await sleep(stopMs);
      process.kill(pid, "SIGCONT");
      await settle(ops, replies);
      ops.forEach(apply);
      observe();
      injected.push(`step ${step}: SIGSTOP w${target} ${stopMs} ms (in flight ${inFlight})`);
    } else if (fault < 0.45) {
      const stopMs = TIMING.TIMEOUT_MS + 400;
      c.primary.kill("SIGSTOP");
      await sleep(stopMs);
      c.primary.kill("SIGCONT");
      await settle(ops, replies);
      ops.forEach(apply);
      observe();
      injected.push(`step ${step}: SIGSTOP primary ${stopMs} ms (in flight ${inFlight})`);
    } else {
      await settle(ops, replies);
      ops.forEach(apply);
      observe();
    }
    await quiet("nothing pending");
  }

  await quiet("nothing pending at the end");
  await sleep(TIMING.ANNOUNCE_TIMEOUT_MS + 200); // late announcements, if any, arrive
  // a round trip from every worker: whatever the primary forwarded before is read
  for (let slot = 0; slot < WORKERS; slot++) await c.ask("a round trip", slot, "count");
  const accepted: string[] = [];
  try {
    compare(seed, c.heard, expected, faulted, accepted);
  } catch (error) {
    const open = [...record.values()].map((conn) => `${conn.id}=${conn.userId}@w${conn.slot}${[...conn.rooms].map((r) => `+${r}`).join("")}`);
    throw new Error(`${(error as Error).message}\ninjected: ${injected.join("; ")}\nopen: ${open.join(" ")}\nsteps: ${trace.join(" | ")}`, { cause: error });
  }
  const online = [...new Set([...record.values()].map((conn) => conn.userId))].sort();
  for (let slot = 0; slot < WORKERS; slot++) {
    expect((await c.ask<string[]>("users", slot, "users")).sort(), `seed ${seed}: users() of w${slot}`).toEqual(online);
    expect(await c.ask<number>("usersCount", slot, "count"), `seed ${seed}: usersCount of w${slot}`).toBe(online.length);
    for (const room of ROOMS) {
      const members = [...new Set([...record.values()].filter((conn) => conn.rooms.has(room)).map((conn) => conn.userId))].sort();
      expect((await c.ask<string[]>("roomUsers", slot, "roomUsers", room)).sort(), `seed ${seed}: room ${room} of w${slot}`).toEqual(members);
    }
  }
  await c.stop();
  cluster = undefined;
  return `seed ${seed}: ${injected.join("; ") || "no faults"} | ${c.heard.length} announcements; accepted: ${accepted.join(", ") || "nothing"}`;
}

/** Per key, the announcements in version order against the derived transitions, exactly. */
function compare(seed: number, heard: Heard[], expected: Map<string, boolean[]>, faulted: Map<number, number>, accepted: string[]): void {
  const streams = new Map<string, Heard[]>();
  for (const h of heard) {
    expect(Number.isSafeInteger(h.transition.version), `seed ${seed}: version of ${JSON.stringify(h.transition)}`).toBe(true);
    if (h.transition.type === "updated") continue;
    streams.set(keyOf(h.transition), [...(streams.get(keyOf(h.transition)) ?? []), h]);
  }
  const updates = heard.filter((h) => h.transition.type === "updated");
  for (const [i, h] of updates.entries()) {
    const first = updates.findIndex((u) => u.transition.userId === h.transition.userId && u.transition.version === h.transition.version);
    if (first !== i) {
      const killedAt = faulted.get(updates[first]!.instance);
      expect(killedAt === updates[first]!.at && h.at === killedAt && h.instance !== updates[first]!.instance, `seed ${seed}: an update of ${h.transition.userId} announced twice`).toBe(true);
      accepted.push(`${h.transition.userId} update heard again after a killed announcer's run`);
    }
  }
  for (const key of new Set([...streams.keys(), ...expected.keys()])) {
    const stream = [...(streams.get(key) ?? [])].sort((a, b) => a.transition.version! - b.transition.version!);
    const wanted = expected.get(key) ?? [];
    const shape = `${key}: heard ${stream.map((h) => `${isJoin(h.transition) ? "join" : "leave"}@${h.transition.version}(w#${h.instance} s${h.at})`).join(",")}; expected ${wanted.map((j) => (j ? "join" : "leave")).join(",")}`;
    const kept: Heard[] = [];
    for (const h of stream) {
      const last = kept.at(-1);
      if (last && last.transition.version === h.transition.version) {
        // the documented run of several: its announcer killed midway, the rest handed on, some already announced
        // (both copies heard in the step that killed the first announcer)
        const killedAt = faulted.get(last.instance);
        expect(last.transition.type === h.transition.type && last.instance !== h.instance && killedAt === last.at && h.at === killedAt, `seed ${seed}: announced twice: ${shape}`).toBe(true);
        accepted.push(`${key} heard again after a killed announcer's run`);
        continue;
      }
      kept.push(h);
    }
    expect(kept.map((h) => isJoin(h.transition)), `seed ${seed}: ${shape}`).toEqual(wanted);
  }
}

it(`announces what the record of open connections implies, over ${SEEDS} histories of a real cluster under real faults`, { timeout: 90_000 * SEEDS }, async () => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) console.log(await runSeed(seed));
});
