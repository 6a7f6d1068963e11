import type { Transition } from "@presence/core";
import { eventually } from "@presence/core/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMemoryChannel, type MemoryWorkerChannel } from "./channel";
import { ClusterStore } from "./cluster-store";
import { PresencePrimary } from "./primary";

/**
 * Exactly once, whatever the interleaving: random calls on three "workers"
 * of one deployment, some of them killed (and replaced) along the way. Every
 * transition any worker reports (a call's answer or an announcement) is
 * counted; at the end, for every user and room, the joins minus the leaves
 * must be 1 for those online (or in the room) and 0 for the others.
 */
describe("a deployment of workers that die at random", () => {
  it("reports each user's and room's transitions exactly once across the workers", async () => {
    const userIds = ["u0", "u1", "u2"];
    const rooms = ["r0", "r1"];
    const command = fc.oneof(
      fc.record({ op: fc.constant("connect" as const), worker: fc.nat(2), conn: fc.nat(7), user: fc.constantFrom(...userIds) }),
      fc.record({ op: fc.constant("disconnect" as const), conn: fc.nat(7) }),
      fc.record({ op: fc.constant("join" as const), conn: fc.nat(7), room: fc.constantFrom(...rooms) }),
      fc.record({ op: fc.constant("leave" as const), conn: fc.nat(7), room: fc.constantFrom(...rooms) }),
      fc.record({ op: fc.constant("kill" as const), worker: fc.nat(2) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(command, { maxLength: 40 }), async (commands) => {
        const channel = createMemoryChannel();
        const primary = new PresencePrimary(channel.primary);
        const net = new Map<string, number>(); // "user" or "room:user" -> joins minus leaves
        const add = (key: string, delta: number) => net.set(key, (net.get(key) ?? 0) + delta);
        const count = (t: Transition) => {
          if (t.type === "disconnected") add(t.userId, -1);
          if (t.type === "left") add(`${t.room}:${t.userId}`, -1);
        };
        const start = () => {
          const link = channel.worker();
          const store = new ClusterStore({ channel: link });
          store.onTransition(count);
          return { link, store };
        };
        const workers: Array<{ link: MemoryWorkerChannel; store: ClusterStore }> = [start(), start(), start()];
        const ownerOf = new Map<string, number>(); // connection -> worker index, as the app would route it
        try {
          for (const cmd of commands) {
            if (cmd.op === "kill") {
              workers[cmd.worker]!.link.kill();
              workers[cmd.worker] = start();
              for (const [conn, worker] of ownerOf) if (worker === cmd.worker) ownerOf.delete(conn);
              continue;
            }
            const conn = `c${cmd.conn}`;
            if (cmd.op === "connect") {
              const worker = ownerOf.get(conn) ?? cmd.worker;
              const online = await workers[worker]!.store.connect(conn, cmd.user).catch(() => false); // conflicts refused
              if (online) add(cmd.user, 1);
              if (!ownerOf.has(conn)) ownerOf.set(conn, worker);
              continue;
            }
            const worker = ownerOf.get(conn);
            if (worker === undefined) continue;
            const store = workers[worker]!.store;
            const user = primary.presence.userOf(conn);
            if (cmd.op === "disconnect") {
              ownerOf.delete(conn);
              if (await store.disconnect(conn)) add(user!, -1);
            } else if (cmd.op === "join") {
              if (await store.join(conn, cmd.room)) add(`${cmd.room}:${user}`, 1);
            } else if (await store.leave(conn, cmd.room)) {
              add(`${cmd.room}:${user}`, -1);
            }
          }
          await eventually(() => expect(primary.pendingHandoffs).toBe(0));
          for (const user of userIds) {
            expect(net.get(user) ?? 0, user).toBe(primary.presence.isOnline(user) ? 1 : 0);
            for (const room of rooms) {
              expect(net.get(`${room}:${user}`) ?? 0, `${room}:${user}`).toBe(primary.presence.isInRoom(user, room) ? 1 : 0);
            }
          }
        } finally {
          await Promise.allSettled(workers.map(({ store }) => store.close()));
          primary.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
