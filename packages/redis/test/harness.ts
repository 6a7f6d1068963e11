import { randomUUID } from "node:crypto";
import type { Transition } from "@presence/core";
import { Redis } from "ioredis";
import { expect } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src";
import { startRedisProxy, type RedisProxy } from "../src/testing";

/** mulberry32: a small seeded generator, so that a failing seed of a history test can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Timings for suites that check semantics, not faults: a loaded 2-core CI
 * machine meets them. Cases that lose a reply on purpose use FAST, to time
 * out quickly.
 */
export const STEADY = { heartbeatMs: 1000, leaseTimeoutMs: 5000, commandTimeoutMs: 3000 };
export const FAST = { heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500 };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds; fails saying what was awaited. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await sleep(20);
  }
}

/** Awaits `work`, failing with `what` after `timeoutMs`. */
export async function within<T>(what: string, work: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${timeoutMs} ms for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A transition as a short string: "+u", "-u", "room>u" (joined), "room<u" (left), "~u" (updated). */
export const show = (t: Transition) =>
  t.type === "connected" ? `+${t.userId}` : t.type === "disconnected" ? `-${t.userId}` : t.type === "joined" ? `${t.room}>${t.userId}` : t.type === "left" ? `${t.room}<${t.userId}` : `~${t.userId}`;

export interface ProxiedStore {
  store: RedisStore;
  proxy: RedisProxy;
  client: Redis;
  close(): Promise<void>;
}

/**
 * Stores of one deployment, each behind a TCP proxy of its own (to lose its
 * replies or cut it off), every transition any of them announces recorded
 * in one log, in the order announced (a call's own transitions are
 * announced through `onTransition` too, before it resolves).
 */
export function deployment(redisPort: number, options: Partial<RedisStoreOptions>) {
  const prefix = `x-${randomUUID()}`;
  const log: string[] = [];
  /** The same announcements, whole (with their versions). */
  const transitions: Transition[] = [];
  const made: ProxiedStore[] = [];
  return {
    prefix,
    log,
    transitions,
    async store(overrides: Partial<RedisStoreOptions> = {}): Promise<ProxiedStore> {
      const proxy = await startRedisProxy(redisPort);
      const client = new Redis(proxy.url, { maxRetriesPerRequest: 0 });
      client.on("error", () => {});
      const store = new RedisStore({ redis: client, prefix, ...options, ...overrides });
      store.onError(() => {});
      store.onTransition((t) => {
        log.push(show(t));
        transitions.push(t);
      });
      const entry = {
        store,
        proxy,
        client,
        async close() {
          await store.close().catch(() => {});
          client.disconnect();
          await proxy.close();
        },
      };
      made.push(entry);
      return entry;
    },
    /**
     * Awaits a call, checking that a `true` answer was announced before it
     * resolved (as the last entry of its kind for its user); returns the
     * answer or the error.
     */
    async call(t: Transition, work: Promise<boolean>): Promise<boolean | Error> {
      try {
        const answer = await work;
        if (answer && !log.includes(show(t))) throw new Error(`${show(t)} was answered true but not announced before the call resolved`);
        return answer;
      } catch (error) {
        if (error instanceof Error && error.message.includes("not announced before")) throw error;
        return error as Error;
      }
    },
    async closeAll() {
      await Promise.allSettled(made.map((m) => m.close()));
    },
  };
}

/**
 * The same per user and per room, in the decider's order: every
 * announcement has a version, no version is heard twice, and sorted by
 * version they alternate and end as the truth says.
 */
export function checkVersions(transitions: Transition[], online: Set<string>, inRoom: Set<string>): void {
  const streams = new Map<string, Array<{ join: boolean; version: number }>>();
  for (const t of transitions) {
    if (t.type === "updated") continue;
    expect(Number.isSafeInteger(t.version), `version of ${JSON.stringify(t)}`).toBe(true);
    const key = t.type === "connected" || t.type === "disconnected" ? t.userId : `${t.room}|${t.userId}`;
    const stream = streams.get(key) ?? [];
    stream.push({ join: t.type === "connected" || t.type === "joined", version: t.version! });
    streams.set(key, stream);
  }
  for (const [key, stream] of streams) {
    stream.sort((a, b) => a.version - b.version);
    const shape = stream.map((e) => `${e.join ? "join" : "leave"}@${e.version}`).join(",");
    stream.forEach((e, i) => {
      if (i > 0) expect(e.version, `${key}: a version heard twice in ${shape}`).toBeGreaterThan(stream[i - 1]!.version);
      expect(e.join, `${key}: transition ${i} of ${shape} in version order`).toBe(i % 2 === 0);
    });
  }
  const announcedOnline = [...streams].filter(([, s]) => s.at(-1)?.join === true).map(([k]) => k).sort();
  expect(announcedOnline).toEqual([...online, ...inRoom].sort());
}
