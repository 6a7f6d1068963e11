import { InvalidOptionError, StoreUnavailableError, type Transition } from "@presence/core";
import { eventually as poll } from "@presence/core/testing";
import { describe, expect, it } from "vitest";
import { createMemoryChannel, type MemoryWorkerChannel } from "./channel";
import { ClusterStore, type ClusterStoreOptions } from "./cluster-store";
import { PresencePrimary, setupPrimary, type PrimaryOptions } from "./primary";

/** Polls with a deadline and says what it waited for. */
async function until(what: string, check: () => unknown, timeoutMs = 5000): Promise<void> {
  try {
    await poll(check, timeoutMs, 10);
  } catch (error) {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${(error as Error).message}`, { cause: error });
  }
}

const key = (t: Transition) => (t.type === "left" || t.type === "joined" ? `${t.type}:${t.room}` : t.type);

/** A primary and workers on in-memory channels; every announcement of every store, in the order heard. */
function deployment(options: PrimaryOptions = {}) {
  const channel = createMemoryChannel();
  const primary = new PresencePrimary(channel.primary, options);
  const heard: Array<{ worker: number; transition: Transition }> = [];
  let workers = 0;
  const worker = (storeOptions: Omit<ClusterStoreOptions, "channel"> = {}) => {
    const link = channel.worker();
    const store = new ClusterStore({ ...storeOptions, channel: link });
    const index = workers++;
    const worker = { index, link, store, seen: [] as Transition[], dead: false };
    store.onTransition((transition) => {
      if (worker.dead) return; // a dead process announces nothing
      worker.seen.push(transition);
      heard.push({ worker: index, transition });
    });
    return worker;
  };
  /** One user's transitions as every observer hears them: in order, with their versions. */
  const log = (userId: string) => heard.filter(({ transition }) => transition.userId === userId).map(({ transition }) => transition);
  const quiet = (what: string) => until(what, () => expect([primary.pendingAnnouncements, primary.storesInGrace]).toEqual([0, 0]));
  return { primary, heard, worker, log, quiet };
}

const kill = (worker: { link: MemoryWorkerChannel; dead: boolean }) => {
  worker.dead = true;
  worker.link.kill();
};

/** Versions strictly increasing, in the order heard. */
const expectOrdered = (transitions: Transition[]) => {
  const versions = transitions.map((t) => t.version);
  for (const version of versions) expect(Number.isSafeInteger(version)).toBe(true);
  expect(versions).toEqual([...versions].sort((a, b) => a! - b!));
  expect(new Set(versions).size).toBe(versions.length);
};

describe("PresencePrimary: a dead or closed store's connections", () => {
  it("stay counted for the leave grace, then go, each user it leaves offline announced once by one live store", async () => {
    const { primary, worker, log, quiet } = deployment({ leaveGraceMs: 300 });
    const [a, b, c] = [worker(), worker(), worker()];
    await a.store.connect("a1", "alice");
    await a.store.join("a1", "lobby");
    await a.store.connect("a2", "bob");
    await b.store.connect("b1", "bob"); // bob stays online through b
    kill(a);
    await until("the primary to hear of the death", () => expect(primary.storesInGrace).toBe(1));
    expect(primary.presence.isOnline("alice")).toBe(true); // inside the grace
    await quiet("the grace to end and its leaves to be announced");
    expect(log("alice").map(key)).toEqual(["connected", "joined:lobby", "left:lobby", "disconnected"]);
    expectOrdered(log("alice"));
    expect(log("bob").map(key)).toEqual(["connected"]);
    expect(b.seen.filter((t) => t.userId === "alice").length === 0 || c.seen.filter((t) => t.userId === "alice").length === 0).toBe(true);
    expect(await b.store.usersList()).toEqual(["bob"]);
    expect(await c.store.roomUsersCount("lobby")).toBe(0);
  });

  it("never announces a user leaving who is back on another worker within the grace: killed or closed", async () => {
    const { primary, worker, log, quiet } = deployment({ leaveGraceMs: 400 });
    const [a, b, c] = [worker(), worker(), worker()];
    await a.store.connect("a1", "alice");
    await a.store.join("a1", "lobby");
    await b.store.connect("b1", "bob");
    await a.store.connect("a2", "gone-for-good");
    await b.store.connect("b2", "also-gone");
    kill(a);
    await b.store.close(); // a deploy's SIGTERM: the store closes while others live
    await until("both stores in their grace", () => expect(primary.storesInGrace).toBe(2));
    // back within the grace, on the worker that stays
    await c.store.connect("c1", "alice");
    await c.store.join("c1", "lobby");
    await c.store.connect("c2", "bob");
    await quiet("the graces to end");
    expect(log("alice").map(key)).toEqual(["connected", "joined:lobby"]);
    expect(log("bob").map(key)).toEqual(["connected"]);
    expect(log("gone-for-good").map(key)).toEqual(["connected", "disconnected"]);
    expect(log("also-gone").map(key)).toEqual(["connected", "disconnected"]);
    expect((await c.store.usersList()).sort()).toEqual(["alice", "bob"]);
  });

  it("applies at once when the closing store is the last: it announces the leaves itself, its own grace and the others'", async () => {
    const { primary, worker, log } = deployment({ leaveGraceMs: 60_000 });
    const [a, b] = [worker(), worker()];
    await a.store.connect("a1", "alice");
    await b.store.connect("b1", "bob");
    kill(a);
    await until("a's grace to start", () => expect(primary.storesInGrace).toBe(1));
    await b.store.close();
    // announced before close() resolved
    expect(b.seen.map((t) => `${t.type}:${t.userId}`).sort()).toEqual(["connected:bob", "disconnected:alice", "disconnected:bob"]);
    expect(log("alice").map(key)).toEqual(["connected", "disconnected"]);
    expect([primary.storesInGrace, primary.presence.connectionsCount]).toEqual([0, 0]);
    await until("the last acknowledgements", () => expect(primary.pendingAnnouncements).toBe(0));
  });

  it("hands the announcement to another worker when the first dies before acknowledging it", async () => {
    const { primary, worker, log } = deployment({ leaveGraceMs: 0 });
    const [a, b] = [worker(), worker()];
    await a.store.connect("a1", "alice");
    await b.store.usersCount(); // b is heard last: the hand-off goes to b
    kill(b); // dead, but the primary does not know yet when a's hand-off goes out
    kill(a);
    const c = worker();
    await until("c to announce alice's leave", () => expect(c.seen.map(key)).toEqual(["disconnected"]));
    expect(log("alice").map(key)).toEqual(["connected", "disconnected"]);
    expect(primary.pendingAnnouncements).toBe(0);
  });

  it("keeps the announcement until a worker with a store shows up", async () => {
    const { primary, worker, log } = deployment();
    const a = worker();
    await a.store.connect("a1", "alice");
    kill(a); // the last store: no grace, and nobody to announce yet
    await until("alice removed", () => expect(primary.presence.isOnline("alice")).toBe(false));
    expect(primary.pendingAnnouncements).toBe(1);
    const b = worker();
    await until("b to announce alice's leave", () => expect(b.seen.map(key)).toEqual(["disconnected"]));
    expect(log("alice").map(key)).toEqual(["connected", "disconnected"]);
    await until("nothing pending", () => expect(primary.pendingAnnouncements).toBe(0));
  });
});

describe("PresencePrimary: hand-offs with a deadline, in chunks", () => {
  it("gives a stopped announcer's hand-off to another store after the deadline; the stopped one, resumed, announces none", async () => {
    const { primary, worker, log, quiet } = deployment({ leaveGraceMs: 0, announceTimeoutMs: 200 });
    const [a, b, c] = [worker(), worker(), worker()];
    for (let i = 0; i < 120; i++) await a.store.connect(`a${i}`, `user${i}`);
    await c.store.usersCount();
    await b.store.usersCount(); // heard last: b gets the hand-off
    const resume = b.link.pause(); // SIGSTOP
    kill(a);
    await until("c to announce the leaves past b's deadline", () => expect(c.seen.filter((t) => t.type === "disconnected")).toHaveLength(120));
    resume(); // SIGCONT: b reads its expired hand-off
    await quiet("nothing pending");
    expect(await b.store.usersCount()).toBe(0);
    expect(b.seen.filter((t) => t.type === "disconnected")).toEqual([]);
    for (let i = 0; i < 120; i++) expect(log(`user${i}`).map(key), `user${i}`).toEqual(["connected", "disconnected"]);
    expect(primary.pendingAnnouncements).toBe(0);
  });

  it("resends only what was not announced when the announcer dies midway through 500 leaves", async () => {
    const { primary, worker, log, quiet } = deployment({ leaveGraceMs: 0 });
    const [a, b, c] = [worker(), worker(), worker()];
    await Promise.all(Array.from({ length: 500 }, (_, i) => a.store.connect(`a${i}`, `user${i}`)));
    await c.store.usersCount();
    await b.store.usersCount(); // heard last: b gets the hand-off
    // b dies after saying it starts its 200th announcement, before it makes it
    const send = b.link.send.bind(b.link);
    let started = 0;
    b.link.send = (envelope) => {
      const sent = send(envelope);
      if (envelope.acks?.some((ack) => ack.starting) && ++started === 200) kill(b);
      return sent;
    };
    kill(a);
    await until("a's death heard", () => expect(primary.presence.usersCount).toBe(0));
    await quiet("every leave announced");
    expect(b.seen).toHaveLength(199);
    expect(c.seen).toHaveLength(301);
    expect(primary.reassigned).toBe(301);
    for (let i = 0; i < 500; i++) expect(log(`user${i}`).map(key), `user${i}`).toEqual(["connected", "disconnected"]);
    expect(primary.presence.usersCount).toBe(0);
  });
});

describe("PresencePrimary: every decided transition announced once, in order", () => {
  it("announces a reply that came after its call timed out, once, and the call made again gets its answer", async () => {
    const { primary, worker, log, quiet } = deployment({ announceTimeoutMs: 5000 });
    const observer = worker();
    const slow = worker({ timeoutMs: 50 });
    await slow.store.usersCount();
    const resume = slow.link.pause(); // the answer will wait past the call's timeout
    const first = slow.store.connect("s1", "sam");
    await expect(first).rejects.toBeInstanceOf(StoreUnavailableError);
    const again = slow.store.connect("s1", "sam"); // the binding's retry: the same request id, still unanswered
    resume();
    expect(await again).toBe(true); // the first try's answer
    await quiet("nothing pending");
    expect(log("sam").map(key)).toEqual(["connected"]);
    expect(slow.seen.map(key)).toEqual(["connected"]);
    expect(primary.presence.connectionsOf("sam")).toBe(1);
    expect(await slow.store.connect("s1", "sam")).toBe(false); // a later repeat is a repeat
    expect(await observer.store.isUserConnected("sam")).toBe(true);
  });

  it("keeps a late answer for the retry that comes after it", async () => {
    const { worker, log, quiet } = deployment({ announceTimeoutMs: 5000 });
    const slow = worker({ timeoutMs: 50 });
    await slow.store.usersCount();
    const resume = slow.link.pause();
    await expect(slow.store.connect("s1", "sam")).rejects.toBeInstanceOf(StoreUnavailableError);
    resume();
    await quiet("the late answer announced");
    expect(log("sam").map(key)).toEqual(["connected"]);
    expect(await slow.store.connect("s1", "sam")).toBe(true); // the recorded answer of the first try
    expect(log("sam").map(key)).toEqual(["connected"]);
  });

  it("holds a user's later transition until the earlier one is announced, so observers hear them in version order", async () => {
    const { primary, worker, log, quiet } = deployment({ announceTimeoutMs: 5000 });
    const [w1, w2] = [worker(), worker()];
    await w1.store.connect("t1", "tess");
    const resume = w1.link.pause("inbound"); // a blocked event loop: its request left, its answer waits in the pipe
    const leaving = w1.store.disconnect("t1");
    await until("the disconnect decided", () => expect(primary.presence.isOnline("tess")).toBe(false));
    let back = false;
    const returning = w2.store.connect("t2", "tess").then((online) => (back = online));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(back).toBe(false); // its "connected" waits for the "disconnected" before it
    resume();
    expect(await leaving).toBe(true);
    expect(await returning).toBe(true);
    await quiet("nothing pending");
    expect(log("tess").map(key)).toEqual(["connected", "disconnected", "connected"]);
    expectOrdered(log("tess"));
  });

  it("hands a stalled asker's transitions to the next asker after the deadline, still in version order", async () => {
    const { primary, worker, log, quiet } = deployment({ announceTimeoutMs: 150 });
    const [w1, w2] = [worker(), worker()];
    await w1.store.connect("t1", "tess");
    const resume = w1.link.pause("inbound");
    const leaving = w1.store.disconnect("t1");
    await until("the disconnect decided", () => expect(primary.presence.isOnline("tess")).toBe(false));
    expect(await w2.store.connect("t2", "tess")).toBe(true); // after w1's deadline, with w1's "disconnected" before it
    expect(w2.seen.filter((t) => t.userId === "tess").map(key)).toEqual(["disconnected", "connected"]);
    resume(); // w1 reads its expired answer: it announces nothing, and its caller hears it could not
    await expect(leaving).rejects.toBeInstanceOf(StoreUnavailableError);
    await quiet("nothing pending");
    expect(log("tess").map(key)).toEqual(["connected", "disconnected", "connected"]);
    expectOrdered(log("tess"));
    expect(await w1.store.disconnect("t1")).toBe(true); // the retry gets the recorded answer
    expect(log("tess")).toHaveLength(3);
  });
});

describe("PresencePrimary options", () => {
  const channel = () => createMemoryChannel().primary;
  const invalid = (fn: () => unknown, option: string) => {
    let error: unknown;
    try {
      fn();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).option).toBe(option);
    expect((error as Error).message).toContain(`\`${option}\``);
  };

  it("throws InvalidOptionError naming an unknown or bad option", () => {
    invalid(() => new PresencePrimary(channel(), { leaveGrace: 10 } as PrimaryOptions), "leaveGrace");
    invalid(() => new PresencePrimary(channel(), { leaveGraceMs: -1 }), "leaveGraceMs");
    invalid(() => new PresencePrimary(channel(), { leaveGraceMs: "2000" as never }), "leaveGraceMs");
    invalid(() => new PresencePrimary(channel(), { announceTimeoutMs: 0 }), "announceTimeoutMs");
    invalid(() => new PresencePrimary(channel(), { announceTimeoutMs: 2 ** 31 }), "announceTimeoutMs");
    invalid(() => new PresencePrimary(channel(), { maxUserIdBytes: 0 }), "maxUserIdBytes");
    invalid(() => new PresencePrimary(channel(), null as never), "options");
    invalid(() => setupPrimary({ timeoutMs: 5000 } as PrimaryOptions), "timeoutMs");
    expect(() => new PresencePrimary(channel(), { leaveGraceMs: 0, announceTimeoutMs: 1 }).close()).not.toThrow();
  });

  it("says which owner refused the option", () => {
    expect(() => setupPrimary({ leaveGraceMs: Number.NaN })).toThrow(/^setupPrimary: `leaveGraceMs`/);
    expect(() => new PresencePrimary(channel(), { leaveGraceMs: Number.NaN })).toThrow(/^PresencePrimary: `leaveGraceMs`/);
  });
});
