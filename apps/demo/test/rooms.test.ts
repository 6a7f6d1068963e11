import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import { TEST_SECRET, connectClient, eventually, fetchWithin, getJson, sleep, startDemo, type DemoProcess } from "./demo-process";

async function loginWithInfo(url: string, userId: string, info?: unknown) {
  const res = await fetchWithin(`${url}/api/login`, { method: "POST", body: JSON.stringify({ userId, info }) });
  return { status: res.status, body: (await res.json()) as { token?: string; error?: string } };
}

type Row = { userId: string; info: Record<string, unknown> };

for (const mode of ["cluster", "redis"] as const) {
  describe(`rooms and user info in the demo (${mode} mode, 2 workers)`, () => {
    let demo: DemoProcess;
    let redis: RedisServer | undefined;
    const clients: ClientSocket[] = [];
    const open = async (userId: string, info?: unknown, transports = ["websocket"]) => {
      const { body } = await loginWithInfo(demo.url, userId, info);
      const socket = await connectClient(demo.url, body.token, { transports });
      clients.push(socket);
      return socket;
    };
    const roomEvents = (socket: ClientSocket) => {
      const events: string[] = [];
      socket.on("user has joined", (room: string, userId: string) => events.push(`+${room}:${userId}`));
      socket.on("user has left", (room: string, userId: string) => events.push(`-${room}:${userId}`));
      return events;
    };
    const roomPresence = async (room: string) =>
      (await getJson<{ count: number; users: Row[] }>(`${demo.url}/api/rooms/${encodeURIComponent(room)}/presence`)).body;

    beforeAll(async () => {
      const flags = ["--mode", mode, "--workers", "2", "--secret", TEST_SECRET];
      if (mode === "redis") {
        redis = await startRedisServer();
        flags.push("--redis-url", redis.url);
      }
      demo = await startDemo(flags);
    });
    afterAll(async () => {
      for (const socket of clients) socket.close();
      await demo?.stop();
      await redis?.stop();
    });

    it("takes info at login and sends it with the connect event", async () => {
      expect((await loginWithInfo(demo.url, "x", { name: 42 })).status).toBe(400);
      expect((await loginWithInfo(demo.url, "x", { name: "X", avatar: "nope" })).status).toBe(400);
      expect((await loginWithInfo(demo.url, "x", "not an object")).status).toBe(400);
      const observer = await open("observer");
      const seen: unknown[][] = [];
      // (userId, info, then the change's version)
      observer.on("user has connected", (...args: unknown[]) => args[0] === "alice" && seen.push(args.slice(0, 2)));
      await open("alice", { name: "Alice", status: "writing" }, ["polling"]);
      await eventually(() => expect(seen).toEqual([["alice", { name: "Alice", status: "writing" }]]));
      const { body } = await getJson<{ info: Record<string, unknown> }>(`${demo.url}/api/presence`);
      expect(body.info.alice).toEqual({ name: "Alice", status: "writing" });
    });

    it("joins and leaves rooms with acks, tells the members, answers the room's presence", async () => {
      const bob = await open("bob", { name: "Bob" });
      const events = roomEvents(bob);
      expect(await bob.emitWithAck("room:join", "general")).toEqual({ ok: true });
      const carol = await open("carol", { name: "Carol", status: "away" });
      const carolTab2 = await open("carol", { name: "Carol", status: "away" }, ["polling"]);
      expect(await carol.emitWithAck("room:join", "general")).toEqual({ ok: true });
      expect(await carolTab2.emitWithAck("room:join", "general")).toEqual({ ok: true });
      expect(await carol.emitWithAck("room:join", "random")).toEqual({ ok: true });
      expect((await carol.emitWithAck("room:join", "")).ok).toBe(false);
      expect((await carol.emitWithAck("room:join", "x".repeat(65))).ok).toBe(false);
      expect((await carol.emitWithAck("room:join", { not: "a string" })).ok).toBe(false);

      await eventually(() => expect(events.filter((e) => e.endsWith("carol"))).toEqual(["+general:carol"]));
      await eventually(async () =>
        expect((await roomPresence("general")).users.sort((a, b) => a.userId.localeCompare(b.userId))).toEqual([
          { userId: "bob", info: { name: "Bob" } },
          { userId: "carol", info: { name: "Carol", status: "away" } },
        ]),
      );
      expect((await roomPresence("general")).count).toBe(2);
      expect(await roomPresence("random")).toEqual({ count: 1, users: [{ userId: "carol", info: { name: "Carol", status: "away" } }] });
      expect(await roomPresence("empty-room")).toEqual({ count: 0, users: [] });
      expect((await getJson(`${demo.url}/api/rooms/${"x".repeat(70)}/presence`)).status).toBe(400);

      expect(await carol.emitWithAck("room:leave", "general")).toEqual({ ok: true });
      await sleep(200);
      expect(events.filter((e) => e.endsWith("carol"))).toEqual(["+general:carol"]); // her other tab is still in
      carolTab2.close();
      await eventually(() => expect(events.filter((e) => e.endsWith("carol"))).toEqual(["+general:carol", "-general:carol"]));
      expect((await roomPresence("general")).users.map((u) => u.userId)).toEqual(["bob"]);
      expect((await roomPresence("random")).count).toBe(1);
    });

    it("keeps channels in rooms of their own: a name is never a socket's own room or an internal one", async () => {
      const erin = await open("erin");
      const frank = await open("frank", undefined, ["polling"]);
      const frankId = frank.id!;
      const gina = await open("gina");
      const ginaSees = roomEvents(gina);
      const frankSees = roomEvents(frank);
      // a channel named like frank's socket: joined as a channel, never as frank's private room
      expect(await gina.emitWithAck("room:join", frankId)).toEqual({ ok: true });
      expect(await erin.emitWithAck("room:join", frankId)).toEqual({ ok: true });
      await eventually(() => expect(ginaSees).toContain(`+${frankId}:erin`), 10_000, "erin's join event, in the channel");
      expect((await roomPresence(frankId)).users.map((u) => u.userId).sort()).toEqual(["erin", "gina"]);
      // the binding's internal rooms have a colon, which no channel name has
      for (const internal of ["presence:sync:all", "presence:sync:events", "channel:general"]) {
        expect((await erin.emitWithAck("room:join", internal)).ok, internal).toBe(false);
      }
      expect(await erin.emitWithAck("room:leave", frankId)).toEqual({ ok: true });
      await eventually(() => expect(ginaSees).toContain(`-${frankId}:erin`), 10_000, "erin's leave event, in the channel");
      expect(await gina.emitWithAck("room:leave", frankId)).toEqual({ ok: true });
      await eventually(async () => expect(await roomPresence(frankId)).toEqual({ count: 0, users: [] }), 10_000, "the channel empty");
      await sleep(200);
      // frank heard nothing of a channel he is not in, named like him or not
      expect(frankSees).toEqual([]);
    });

    it("bounds what one connection may ask: 32 rooms at most, and a budget of changes", { timeout: 30_000 }, async () => {
      const hoarder = await open("hoarder");
      const answers: Array<{ ok: boolean; error?: string }> = [];
      // paced within the budget (10 a second): only the room cap refuses
      for (let i = 0; i < 33; i++) {
        answers.push(await hoarder.timeout(5000).emitWithAck("room:join", `hoard-${i}`));
        await sleep(110);
      }
      expect(answers.slice(0, 32).every((answer) => answer.ok)).toBe(true);
      expect(answers[32]).toEqual({ ok: false, error: "in 32 rooms already: leave one first" });
      expect(await hoarder.timeout(5000).emitWithAck("room:leave", "hoard-0")).toEqual({ ok: true });
      expect(await hoarder.timeout(5000).emitWithAck("room:join", "hoard-32")).toEqual({ ok: true });

      // 40 at once: the burst of 20 passes (and what the budget refills meanwhile), the rest are refused
      const spammer = await open("spammer");
      const burst = await Promise.all(
        Array.from({ length: 40 }, (_, i) => spammer.timeout(5000).emitWithAck(i % 2 ? "room:leave" : "room:join", "spam")),
      );
      const refused = burst.filter((answer) => !answer.ok);
      expect(burst.length - refused.length).toBeGreaterThanOrEqual(20);
      expect(refused.length).toBeGreaterThan(10);
      for (const answer of refused) expect(answer.error).toBe("too many requests: slow down");
      expect(await spammer.timeout(5000).emitWithAck("user:update", { name: "Spam" })).toEqual({ ok: false, error: "too many requests: slow down" });
    });

    it("updates a user's info for everyone", async () => {
      const observer = await open("watcher");
      const updates: unknown[][] = [];
      observer.on("user has updated", (...args: unknown[]) => updates.push(args.slice(0, 2)));
      const dave = await open("dave", { name: "Dave", status: "here" });
      expect(await dave.emitWithAck("user:update", { name: "Dave", status: "lunch" })).toEqual({ ok: true });
      await eventually(() => expect(updates).toEqual([["dave", { name: "Dave", status: "lunch" }]]));
      expect((await dave.emitWithAck("user:update", { name: 7 })).ok).toBe(false);
      const { body } = await getJson<{ info: Record<string, unknown> }>(`${demo.url}/api/presence`);
      expect(body.info.dave).toEqual({ name: "Dave", status: "lunch" });
    });
  });
}
