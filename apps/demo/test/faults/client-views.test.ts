import { createPresenceClient, type PresenceClient } from "@presence/client";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { expect, it } from "vitest";
import { eventually, getJson, sleep } from "../demo-process";
import { Deployment, TIMING, workerPids } from "./deployment";

type View = { name: string; socket: ClientSocket; client: PresenceClient; room?: string };

/** Asks the server to put a socket in a room, with a deadline. */
async function joinRoom(socket: ClientSocket, room: string): Promise<void> {
  const answer = (await socket.timeout(5000).emitWithAck("room:join", room)) as { ok: boolean; error?: string };
  if (!answer.ok) throw new Error(`room:join ${room} refused: ${answer.error}`);
}

it(
  "clients holding presence end equal to the server's answer after storms, churn, a worker SIGKILL and a Redis restart",
  { timeout: 120_000 },
  async () => {
    const deployment = await Deployment.start();
    const views: View[] = [];
    try {
      const [a, b] = deployment.instances as [(typeof deployment.instances)[0], (typeof deployment.instances)[0]];
      // viewers on both instances, reconnecting like browsers do: each holds all users or the room's
      for (let i = 0; i < 6; i++) {
        const instance = i % 2 ? b : a;
        const token = await deployment.token(`viewer-${i}`, instance);
        const socket = connect(instance.url, { auth: { token }, forceNew: true, transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 500 });
        const room = i >= 4 ? "general" : undefined;
        views.push({ name: `viewer-${i}`, socket, room, client: createPresenceClient(socket, room ? { room } : undefined) });
      }

      // a storm over both instances; half the users join the room
      const tabs: ClientSocket[] = [];
      for (let i = 0; i < 40; i++) {
        const tab = await deployment.open(`user-${i % 30}`, i % 2 ? b : a);
        if (i % 2 === 0) await joinRoom(tab, "general");
        tabs.push(tab);
      }
      // churn: some leave, some come back, some open more tabs
      for (let i = 0; i < 40; i += 3) deployment.close(tabs[i]!);
      for (let i = 0; i < 10; i++) {
        const tab = await deployment.open(`late-${i}`, i % 2 ? a : b);
        if (i % 3 === 0) await joinRoom(tab, "general");
      }
      // a worker killed with SIGKILL, then Redis restarted empty while tabs open and close
      process.kill(workerPids(a)[0]!, "SIGKILL");
      await sleep(TIMING.leaseTimeoutMs);
      await deployment.redis.shutdownNoSave();
      deployment.close(tabs[1]!);
      await sleep(TIMING.heartbeatMs);
      await deployment.redis.restart();
      await deployment.open("after-restart", b);

      // quiescence: every view equals what the server answers
      await eventually(async () => {
        for (const instance of deployment.instances) expect(instance.child.exitCode).toBeNull();
        const everyone = (await getJson<{ users: string[] }>(`${a.url}/api/presence`)).body.users.sort();
        const room = (await getJson<{ users: Array<{ userId: string }> }>(`${a.url}/api/rooms/general/presence`)).body.users
          .map((u) => u.userId)
          .sort();
        for (const view of views) {
          const seen = view.client.list().map((u) => u.userId).sort();
          expect(seen, `${view.name}${view.room ? ` (room ${view.room})` : ""}`).toEqual(view.room ? room : everyone);
        }
      }, 30_000);
      expect(views.every((view) => view.client.synced)).toBe(true);
    } finally {
      for (const view of views) {
        view.client.close();
        view.socket.close();
      }
      await deployment.stop();
    }
  },
);
