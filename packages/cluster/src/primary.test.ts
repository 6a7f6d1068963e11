import type { Transition } from "@presence/core";
import { eventually } from "@presence/core/testing";
import { describe, expect, it } from "vitest";
import { createMemoryChannel } from "./channel";
import { ClusterStore } from "./cluster-store";
import { PresencePrimary } from "./primary";

function deployment() {
  const channel = createMemoryChannel();
  const primary = new PresencePrimary(channel.primary);
  const worker = () => {
    const link = channel.worker();
    const store = new ClusterStore({ channel: link });
    const seen: Transition[] = [];
    store.onTransition((t) => seen.push(t));
    return { link, store, seen };
  };
  return { primary, worker };
}

const describeTransition = (t: Transition) => (t.type === "left" ? `-${t.room}:${t.userId}` : `${t.type}:${t.userId}`);

describe("PresencePrimary", () => {
  it("removes a dead worker's connections at once and has one live worker announce what that changes", async () => {
    const { primary, worker } = deployment();
    const [a, b, c] = [worker(), worker(), worker()];
    await a.store.connect("a1", "alice");
    await a.store.join("a1", "lobby");
    await a.store.connect("a2", "bob");
    await b.store.connect("b1", "bob"); // bob stays online through b
    a.link.kill();
    await eventually(() => expect([...b.seen, ...c.seen].map(describeTransition).sort()).toEqual(["-lobby:alice", "disconnected:alice"]));
    expect(b.seen.length === 0 || c.seen.length === 0).toBe(true); // one worker, not both
    await eventually(() => expect(primary.pendingHandoffs).toBe(0));
    expect(await b.store.usersList()).toEqual(["bob"]);
    expect(await c.store.roomUsersCount("lobby")).toBe(0);
  });

  it("hands the announcement to another worker when the first dies before acknowledging it", async () => {
    const { primary, worker } = deployment();
    const [a, b] = [worker(), worker()];
    await a.store.connect("a1", "alice");
    await b.store.usersCount();
    b.link.kill(); // dead, but the primary does not know yet when a's hand-off goes out
    a.link.kill();
    const c = worker();
    await eventually(() => expect(c.seen.map(describeTransition)).toEqual(["disconnected:alice"]));
    expect(b.seen).toEqual([]);
    await eventually(() => expect(primary.pendingHandoffs).toBe(0));
  });

  it("keeps the announcement until a worker with a store shows up", async () => {
    const { primary, worker } = deployment();
    const a = worker();
    await a.store.connect("a1", "alice");
    a.link.kill();
    await eventually(() => expect(primary.pendingHandoffs).toBe(1));
    expect(primary.presence.isOnline("alice")).toBe(false);
    const b = worker();
    await eventually(() => expect(b.seen.map(describeTransition)).toEqual(["disconnected:alice"]));
    await eventually(() => expect(primary.pendingHandoffs).toBe(0));
  });

  it("gives a closing store's unacknowledged hand-offs to another store, announced once", async () => {
    const { primary, worker } = deployment();
    const [a, b, c] = [worker(), worker(), worker()];
    for (let i = 0; i < 20; i++) await a.store.connect(`a${i}`, `user${i}`);
    await Promise.all([b.store.usersCount(), c.store.usersCount()]);
    a.link.kill();
    void b.store.close(); // racing the hand-off
    const expected = Array.from({ length: 20 }, (_, i) => `disconnected:user${i}`).sort();
    const announced = () => [...b.seen, ...c.seen].map(describeTransition).sort();
    await eventually(() => expect(announced()).toEqual(expected));
    await eventually(() => expect(primary.pendingHandoffs).toBe(0));
    await new Promise((resolve) => setTimeout(resolve, 50)); // a duplicate would have come by now
    expect(announced()).toEqual(expected);
  });
});
