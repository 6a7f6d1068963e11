import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import { expect, it } from "vitest";
import { sleep, startDemo, type DemoProcess } from "../demo-process";
import { TIMING } from "./deployment";
import { LoadGenerator, OPEN_FLAGS, Observer, cleanUp, preload, sequence, settle, viewsOn, type Scope, type View } from "./truth";

/** How far each instance's wall clock is off the machine's. */
const SKEW_MS = 2000;
const LEAVE_DELAY_MS = 200;
const SEED = Number(process.env.FAULTS_SEED ?? 20);

/** The `iat` (seconds, the signer's clock) of a demo JWT. */
const issuedAt = (token: string) => (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { iat: number }).iat;

it(
  "clock skew: two redis-mode instances 4 s apart; users hop between them 100-400 ms apart, others join the slow one; every view and every observer's last event ends at the truth, and every event stream keeps the decider's order",
  { timeout: 90_000 },
  async () => {
    let redis: RedisServer | undefined;
    const instances: DemoProcess[] = [];
    const views: View[] = [];
    let load: LoadGenerator | undefined;
    try {
      redis = await startRedisServer();
      const flags = [
        "--mode", "redis", "--workers", "2", "--redis-url", redis.url, ...OPEN_FLAGS,
        "--heartbeat-ms", String(TIMING.heartbeatMs), "--lease-timeout-ms", String(TIMING.leaseTimeoutMs),
        "--leave-delay-ms", String(LEAVE_DELAY_MS),
      ];
      const clock = (offset: number) => ({ ...preload("skew-clock.mjs"), PRESENCE_TEST_CLOCK_OFFSET_MS: String(offset) });
      const [fast, slow] = await Promise.all([startDemo(flags, clock(SKEW_MS)), startDemo(flags, clock(-SKEW_MS))]);
      instances.push(fast, slow);
      const other = (instance: DemoProcess) => (instance === fast ? slow : fast);

      // the skew reached the workers (a login is a worker's): the two sign tokens at least 3 s apart
      load = new LoadGenerator(() => fast.url);
      const slowLoad = new LoadGenerator(() => slow.url);
      expect(issuedAt(await load.token("clock-probe")) - issuedAt(await slowLoad.token("clock-probe"))).toBeGreaterThanOrEqual(3);

      const followed = ["hop-0", "hop-3", "hop-5", "late-1", "gone-0", "never-online"];
      const scopes: Scope[] = [{ type: "all" }, { type: "room", room: "general" }, { type: "users", userIds: followed }, { type: "count" }];
      // two viewers on each instance, members of "general" (so they hear its joins and leaves): each holds every scope and observes the events
      const observers: Observer[] = [];
      for (const instance of [fast, slow]) {
        for (let i = 0; i < 2; i++) {
          const name = `viewer-${instance === fast ? "fast" : "slow"}-${i}`;
          const tab = await load.open(name, instance.url, { rooms: ["general"] });
          views.push(...viewsOn(name, tab, scopes));
          observers.push(new Observer(name, tab.socket));
        }
      }

      const next = sequence(SEED);
      const loadUsers: string[] = [];
      const open = (userId: string, instance: DemoProcess, rooms: string[] = []) => {
        if (!loadUsers.includes(userId)) loadUsers.push(userId);
        return load!.open(userId, instance.url, { rooms });
      };
      // who is where: hop users on both instances, half of them in "general"; a user with a tab on each; users who will leave
      const where = new Map<string, DemoProcess>();
      for (let i = 0; i < 10; i++) {
        const instance = i % 2 ? slow : fast;
        where.set(`hop-${i}`, instance);
        await open(`hop-${i}`, instance, i % 2 === 0 ? ["general"] : []);
      }
      await open("multi", fast, ["general"]);
      const multiOnSlow = await open("multi", slow);
      for (let i = 0; i < 3; i++) await open(`gone-${i}`, fast, ["general"]);

      // hops: a user's tab closes on one instance and the user is back on the other 100-400 ms later, four lanes at once
      const hop = async (userId: string) => {
        const from = where.get(userId)!;
        const rooms = [...(load!.tabsOf(userId)[0]?.rooms ?? [])];
        for (const tab of load!.tabsOf(userId)) load!.close(tab);
        await sleep(100 + next(301));
        const to = other(from);
        where.set(userId, to);
        await open(userId, to, rooms);
      };
      // each lane its own users (hop-i with i % 4 === lane), so no two hops of one user overlap
      const lane = async (lane: number) => {
        const users = [...where.keys()].filter((_, i) => i % 4 === lane);
        for (let round = 0; round < 6; round++) await hop(users[round % users.length]!);
      };
      // meanwhile others join the slow instance, after the views subscribed, and some leave for good
      const newcomers = async () => {
        for (let i = 0; i < 6; i++) {
          await open(`late-${i}`, slow, i % 2 === 0 ? ["general"] : []);
          await sleep(next(150));
        }
        for (let i = 0; i < 3; i++) load!.close(load!.tabsOf(`gone-${i}`)[0]!);
        load!.close(multiOnSlow);
      };
      await Promise.all([lane(0), lane(1), lane(2), lane(3), newcomers()]);

      const expectation = { load, views, observers, observedUsers: loadUsers, observedRooms: ["general"] };
      await settle("every view and observer on both skewed instances", expectation, { withinMs: 15_000, quietMs: 2000 });

      // the test provoked what it claims: hops past the grace were announced, and every event carried a version
      const hopLeaves = observers[0]!.leaves;
      const announcedHops = [...hopLeaves.keys()].filter((userId) => userId.startsWith("hop-"));
      expect(announcedHops.length, "hop users announced leaving (hops past the grace)").toBeGreaterThan(0);
      for (const observer of observers) {
        for (const [key, { version }] of observer.last) expect(typeof version, `${observer.name}: version of ${key}`).toBe("number");
      }
      console.log(
        `clock skew: ${loadUsers.length} users, ${[...hopLeaves.values()].reduce((a, b) => a + b, 0)} leaves and ` +
          `${[...observers[0]!.joins.values()].reduce((a, b) => a + b, 0)} joins seen by one observer; every view equal to the truth`,
      );
    } finally {
      await cleanUp(load, views, instances);
      await redis?.stop();
    }
  },
);
