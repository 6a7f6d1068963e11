import { it } from "vitest";
import { sleep } from "../demo-process";
import { Deployment, TIMING, workerPids } from "./deployment";
import { LoadGenerator, RECONNECTING, settle, viewsOn, type Scope, type Tab, type View } from "./truth";

it(
  "clients holding presence (every scope) end equal to the load generator's record after storms, churn, a worker SIGKILL and a Redis restart, and stay so",
  { timeout: 120_000 },
  async () => {
    const deployment = await Deployment.start();
    const views: View[] = [];
    const [a, b] = deployment.instances as [(typeof deployment.instances)[0], (typeof deployment.instances)[0]];
    const load = new LoadGenerator(() => a.url);
    try {
      // viewers on both instances, reconnecting like browsers do: all users, the room, a user list, the count
      const scopes: Scope[] = [{ type: "all" }, { type: "room", room: "general" }, { type: "users", userIds: ["user-0", "user-3", "late-3", "after-restart", "never-online"] }, { type: "count" }];
      for (let i = 0; i < 4; i++) {
        const tab = await load.open(`viewer-${i}`, (i % 2 ? b : a).url, { ...RECONNECTING, rooms: ["general"] });
        views.push(...viewsOn(`viewer-${i}`, tab, scopes));
      }

      // a storm over both instances; half the tabs join the room
      const tabs: Tab[] = [];
      for (let i = 0; i < 40; i++) tabs.push(await load.open(`user-${i % 30}`, (i % 2 ? b : a).url, { rooms: i % 2 === 0 ? ["general"] : [] }));
      // churn: some leave, some come back, some open more tabs
      for (let i = 0; i < 40; i += 3) load.close(tabs[i]!);
      for (let i = 0; i < 10; i++) await load.open(`late-${i}`, (i % 2 ? a : b).url, { rooms: i % 3 === 0 ? ["general"] : [] });
      // a worker killed with SIGKILL (its tabs do not come back; its viewer does), then Redis restarted empty while tabs open and close
      process.kill(workerPids(a)[0]!, "SIGKILL");
      await sleep(TIMING.leaseTimeoutMs);
      await deployment.redis.shutdownNoSave();
      const open = tabs.find((tab) => tab.connected);
      if (open) load.close(open);
      await sleep(TIMING.heartbeatMs);
      await deployment.redis.restart();
      await load.open("after-restart", b.url);

      // quiescence: every view equals the generator's record, and stays equal
      await settle("every view after the storms, the kill and the Redis restart", { load, views }, { withinMs: 30_000, quietMs: 2000 });
    } finally {
      for (const view of views) view.close();
      load.closeAll();
      await deployment.stop();
    }
  },
);

