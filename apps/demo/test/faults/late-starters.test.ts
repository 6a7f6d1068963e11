import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import { afterEach, describe, expect, it } from "vitest";
import { startDemo, type DemoProcess } from "../demo-process";
import { TIMING } from "./deployment";
import { LoadGenerator, OPEN_FLAGS, cleanUp, preload, settle, viewsOn, waitForLine, workerIds, workerPid, type Scope, type View } from "./truth";

const SCOPES: Scope[] = [{ type: "count" }, { type: "all" }, { type: "room", room: "general" }, { type: "users", userIds: ["late-0", "late-3", "early-0", "early-1"] }];

describe("late starters: views subscribed before a process started count its users", () => {
  let redis: RedisServer | undefined;
  let load: LoadGenerator | undefined;
  const views: View[] = [];
  const processes: DemoProcess[] = [];
  afterEach(async () => {
    await cleanUp(load, views.splice(0), processes.splice(0));
    await redis?.stop();
    redis = load = undefined;
  });

  it("cluster mode: a worker killed and forked again after the views subscribed; its users are counted, and their leaves", { timeout: 60_000 }, async () => {
    const demo = await startDemo(["--mode", "cluster", "--workers", "2", ...OPEN_FLAGS, "--leave-delay-ms", "0"], preload("worker-id.mjs"));
    processes.push(demo);
    load = new LoadGenerator(() => demo.url);
    const viewer = await load.open("viewer", demo.url, { rooms: ["general"] });
    views.push(...viewsOn("viewer", viewer, SCOPES));
    // users on both workers (the primary sends each new connection to the worker with the fewest)
    for (let i = 0; i < 12; i++) await load.open(`early-${i}`, demo.url, { rooms: i % 3 ? [] : ["general"] });
    const expectation = { load, views };
    await settle("the views before the restart", expectation, { quietMs: 0 });

    // the worker the viewer is not on dies (its users with it), and the primary forks another
    const survivor = viewer.worker!;
    const [restarted] = workerIds(demo).filter((id) => id !== survivor);
    const pid = workerPid(demo, restarted!);
    const mark = demo.output.length;
    process.kill(pid, "SIGKILL");
    const index = await waitForLine(demo, /^presence-test: worker \d+ pid \d+$/, mark, `a worker forked in place of worker ${restarted}`);
    const fresh = Number(/worker (\d+)/.exec(demo.output[index]!)![1]);
    await settle("the views after the kill", expectation, { quietMs: 0 });
    const onSurvivor = [...load.tabs].filter((tab) => tab.worker === survivor).length;
    expect(onSurvivor, "connections left on the surviving worker (the new one gets the next ones while it has fewer)").toBeGreaterThanOrEqual(5);

    // users on the new worker: every view subscribed before it existed counts them, their room joins, and their leaves
    const late = [await load.openOnWorker("late-0", demo.url, fresh, { rooms: ["general"] })];
    for (let i = 1; i < 4; i++) late.push(await load.open(`late-${i}`, demo.url, { rooms: i % 2 ? [] : ["general"] }));
    expect(late.map((tab) => tab.worker), "the late users' workers").toEqual([fresh, fresh, fresh, fresh]);
    await settle("the views with the new worker's users", expectation, { quietMs: 1500 });
    load.close(late[0]!);
    load.close(late[1]!);
    await settle("the views after two of them left", expectation, { quietMs: 1500 });
  });

  it("redis mode: an instance started after the views subscribed on another; its users are counted, and their leaves", { timeout: 60_000 }, async () => {
    redis = await startRedisServer();
    const flags = [
      "--mode", "redis", "--workers", "2", "--redis-url", redis.url, ...OPEN_FLAGS,
      "--heartbeat-ms", String(TIMING.heartbeatMs), "--lease-timeout-ms", String(TIMING.leaseTimeoutMs), "--leave-delay-ms", "0",
    ];
    const first = await startDemo(flags, preload());
    processes.push(first);
    load = new LoadGenerator(() => first.url);
    const viewer = await load.open("viewer", first.url, { rooms: ["general"] });
    views.push(...viewsOn("viewer", viewer, SCOPES));
    await load.open("early-0", first.url);
    const expectation = { load, views };
    await settle("the views before the second instance", expectation, { quietMs: 0 });

    const second = await startDemo(flags, preload());
    processes.push(second);
    const late = [];
    for (let i = 0; i < 4; i++) late.push(await load.open(`late-${i}`, second.url, { rooms: i % 2 ? [] : ["general"] }));
    await settle("the views with the second instance's users", expectation, { quietMs: 1500 });
    expect(views[0]!.seen(), "the count").toBe(6);
    load.close(late[0]!);
    load.close(late[1]!);
    await settle("the views after two of them left", expectation, { quietMs: 1500 });
    expect(views[0]!.seen(), "the count").toBe(4);
  });
});
