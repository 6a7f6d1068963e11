import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Transition } from "@presence/core";
import { afterEach, describe, expect, it } from "vitest";
import type { RedisStore } from "../src";
import { waitFor, within } from "./harness";
import { useRedis } from "./redis-fixture";

const redis = useRedis();
const holderScript = fileURLToPath(new URL("./fixtures/holder.mjs", import.meta.url));
const FAST = { heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
});

async function holder(prefix: string, specs: string[]) {
  const child = spawn(
    process.execPath,
    [holderScript, redis.server.url, prefix, String(FAST.heartbeatMs), String(FAST.leaseTimeoutMs), ...specs],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  children.push(child);
  const lines: Array<Record<string, unknown>> = [];
  const reader = createInterface({ input: child.stdout! });
  const [first] = (await within(`holder ${specs.join(" ")} to report its process id`, once(reader, "line"))) as [string];
  reader.on("line", (line) => lines.push(JSON.parse(line)));
  const { processId } = JSON.parse(first) as { processId: string };
  return { child, processId, lines, send: (command: string) => child.stdin!.write(`${command}\n`) };
}

async function counts(store: RedisStore): Promise<Record<string, number>> {
  const all = await redis.admin.hgetall(store.keys.users);
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Number(v)]));
}

/** Polls until the users hash equals `expected`, checking on every look that no count is below 1; `withinMs` is the wait's deadline. */
async function convergesTo(store: RedisStore, expected: Record<string, number>, withinMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    const now = await counts(store);
    for (const [userId, count] of Object.entries(now)) {
      expect(count, `count of ${userId}`).toBeGreaterThanOrEqual(1);
    }
    if (JSON.stringify(Object.entries(now).sort()) === JSON.stringify(Object.entries(expected).sort())) return;
    if (Date.now() - started > withinMs) expect(now, `the users hash after ${withinMs} ms`).toEqual(expected);
    await sleep(20);
  }
}

function record(stores: RedisStore[]) {
  const seen: string[] = [];
  for (const store of stores) {
    store.onTransition((t: Transition) => {
      if (t.type === "connected" || t.type === "disconnected") seen.push(`${t.type === "connected" ? "+" : "-"}${t.userId}`);
    });
  }
  return seen;
}

describe("fencing and recovery on real Redis", () => {
  it("fences a process paused (SIGSTOP) past its lease, applies nothing it sent, and converges after SIGCONT", async () => {
    const deployment = redis.deployment(FAST);
    const survivor = deployment.store();
    survivor.onError(() => {});
    await survivor.connect("s1", "alice");
    const paused = await holder(deployment.prefix, ["h1=alice@lobby", "h2=bob@lobby", "h3=carol@lobby"]);
    expect(await counts(survivor)).toEqual({ alice: 2, bob: 1, carol: 1 });

    const seen = record([survivor]);
    paused.child.kill("SIGSTOP");
    await convergesTo(survivor, { alice: 1 }, 10_000);
    expect(seen.sort()).toEqual(["-bob", "-carol"]);
    expect(await survivor.roomUsersCount("lobby")).toBe(0);

    // sent while paused, run first thing on resume: under the dead epoch
    paused.send("d h2");
    paused.child.kill("SIGCONT");
    await convergesTo(survivor, { alice: 2, carol: 1 }, 10_000);

    await sleep(3 * FAST.heartbeatMs);
    expect(await counts(survivor)).toEqual({ alice: 2, carol: 1 });
    expect(await redis.admin.zscore(survivor.keys.processes, paused.processId)).toBeNull();
    expect(await redis.admin.exists(survivor.keys.connections(paused.processId))).toBe(0);
    // the resumed process announced carol's return; bob, whose tab closed meanwhile, stays gone
    const announced = paused.lines.filter((l) => l.transition).map((l) => l.transition as Transition);
    expect(announced.map(({ version, ...rest }) => (expect(version).toBeTypeOf("number"), rest))).toEqual([
      { type: "joined", room: "lobby", userId: "alice" },
      { type: "connected", userId: "carol" },
      { type: "joined", room: "lobby", userId: "carol" },
    ]); // republished in the order the connections were opened (h1, h3)
    // the room came back with the connections: bob, whose tab closed while paused, is not in it
    expect((await redis.admin.hgetall(survivor.keys.room("lobby")))).toEqual({ alice: "1", carol: "1" });
  });

  it("converges to the live connections after SHUTDOWN NOSAVE and a restart on the same port", async () => {
    const deployment = redis.deployment(FAST);
    const [a, b] = [deployment.store(), deployment.store()];
    for (const store of [a, b]) store.onError(() => {});
    await a.connect("a1", "ann");
    await a.connect("a2", "bob");
    await b.connect("b1", "bob");
    await b.connect("b2", "cat");
    const seen = record([a, b]);

    await redis.server.shutdownNoSave();
    // while Redis is gone: ann's only tab closes, dan opens one
    await expect(a.disconnect("a1")).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    await expect(b.connect("b3", "dan")).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    await redis.server.restart();
    await redis.admin.ping();

    await convergesTo(a, { bob: 2, cat: 1, dan: 1 }, 10_000);
    // ann's leave is announced once every process had a lease to republish its users
    await waitFor("ann's leave to be announced", () => seen.includes("-ann"));
    await sleep(3 * FAST.heartbeatMs);
    expect(seen.filter((e) => e === "-ann")).toEqual(["-ann"]);
    // bob and cat never went offline: not announced again
    expect(seen.filter((e) => e.startsWith("+"))).toEqual(["+dan"]);
    expect(seen).toContain("+dan");
    expect(seen.filter((e) => e.startsWith("-") && e !== "-ann")).toEqual([]);
  });

  it("converges when Redis is unreachable (SIGSTOP) for longer than the lease, then back", async () => {
    const deployment = redis.deployment(FAST);
    const [a, b] = [deployment.store(), deployment.store()];
    for (const store of [a, b]) store.onError(() => {});
    await a.connect("a1", "ann");
    await b.connect("b1", "ann");
    await b.connect("b2", "bob");

    redis.server.signal("SIGSTOP");
    const during = [a.disconnect("a1"), a.connect("a3", "eve"), b.disconnect("b2")].map((p) => p.catch((e) => e));
    await sleep(3 * FAST.leaseTimeoutMs);
    redis.server.signal("SIGCONT");
    await within("the calls made while Redis was stopped to settle", Promise.all(during));

    await convergesTo(a, { ann: 1, eve: 1 }, 10_000);
    await sleep(3 * FAST.heartbeatMs);
    expect(await counts(a)).toEqual({ ann: 1, eve: 1 });
    expect(await a.isUserConnected("bob")).toBe(false);
  });
});
