import { afterEach, expect, it } from "vitest";
import { StoreBase, type PresenceStore, type Transition, type UserInfo, type UserPresence } from "@presence/core";
import { createPresenceClient } from "../src";
import { connectClient, createBus, sleep, startNode, waitFor, type TestNode } from "./harness";

/**
 * Two changes of one user, decided in order by one decider, that reach a
 * third node in the other order (their nodes' relays race): the view there
 * must end with what the later one says. The store is the test's own, so the
 * test says when each node's store announces what.
 *
 * The truth, as a bucket decided it: u1 joined room-a with info A (v11), then u1's info became B (v12).
 */
const truth = { info: { name: "B" } as UserInfo, inRoom: true };

class FakeStore extends StoreBase implements PresenceStore {
  say(t: Transition) { this.events.announce(t); }
  async connect() { return false; }
  async disconnect() { return false; }
  async updateInfo() { return false; }
  async userInfo(u: string) { return u === "u1" ? truth.info : undefined; }
  async join() { return false; }
  async leave() { return false; }
  async isUserInRoom(u: string) { return u === "u1" && truth.inRoom; }
  async roomUsersCount() { return stage ? 1 : 0; }
  async *roomUsers(): AsyncIterable<UserPresence[]> { yield stage ? [{ userId: "u1", connections: 1, info: truth.info }] : []; }
  async isUserConnected(u: string) { return stage && u === "u1"; }
  async usersCount() { return stage ? 1 : 0; }
  async usersList() { return stage ? ["u1"] : []; }
  async *users(): AsyncIterable<UserPresence[]> { yield stage ? [{ userId: "u1", connections: 1, info: truth.info }] : []; }
  async userStates(userIds: readonly string[]) { return userIds.map((userId) => ({ userId, online: stage && userId === "u1" })); }
  protected async shutdown() {}
}
let stage = false; // before: nobody online

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
  stage = false;
});

/** Three nodes on one bus, each with a store the test speaks for, and a watcher's socket on the third. */
async function threeNodes() {
  const bus = createBus();
  const stores = [new FakeStore(), new FakeStore(), new FakeStore()];
  const nodes: TestNode[] = [];
  for (const store of stores) {
    const node = await startNode({ store, authorize: () => true }, { adapter: bus.adapter as never });
    nodes.push(node);
    cleanup.push(() => node.close());
  }
  await sleep(300); // the relays know each other
  const socket = await connectClient(nodes[2]!.port, { userId: "watcher" });
  cleanup.push(() => void socket.close());
  return { stores, socket };
}

it("a room view ends with the user's newest info when their update overtakes their room join across nodes", async () => {
  const { stores, socket } = await threeNodes();
  const room = createPresenceClient<{ name: string }>(socket, { room: "room-a" });
  await waitFor("synced", () => { if (!room.synced) throw new Error("not yet"); });
  stage = true;
  // node B's store decided the update later (v12) but announces it first; node A's join (v11) is announced late (a slow reply)
  stores[1]!.say({ type: "updated", userId: "u1", info: { name: "B" }, version: 12 });
  await sleep(400); // a tick
  stores[0]!.say({ type: "joined", room: "room-a", userId: "u1", info: { name: "A" }, version: 11 });
  await sleep(600);
  expect(room.list()).toEqual([{ userId: "u1", info: { name: "B" } }]);
});

it("an all-users view lists a user whose info update overtakes their connect across nodes", async () => {
  const { stores, socket } = await threeNodes();
  const all = createPresenceClient<{ name: string }>(socket);
  const heard: unknown[][] = [];
  socket.onAny((event: string, ...args: unknown[]) => { if (event.startsWith("user has")) heard.push([event, ...args]); });
  await waitFor("synced", () => { if (!all.synced) throw new Error("not yet"); });
  stage = true;
  // u1 connected on node A (v5, info A); their other tab on node B set info B (v6); B's relay reaches node C first
  stores[1]!.say({ type: "updated", userId: "u1", info: { name: "B" }, version: 6 });
  await sleep(400);
  stores[0]!.say({ type: "connected", userId: "u1", info: { name: "A" }, version: 5 });
  await sleep(600);
  expect(all.list().filter((u) => u.userId === "u1")).toEqual([{ userId: "u1", info: { name: "B" } }]);
  // the per-user events say the same: one connect, with the newer info and the update's version
  expect(heard.filter(([, userId]) => userId === "u1")).toEqual([["user has connected", "u1", { name: "B" }, 6]]);
});
