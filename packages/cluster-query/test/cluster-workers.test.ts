import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { eventually as poll } from "@presence/core/testing";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const fixture = fileURLToPath(new URL("./fixtures/cluster.mjs", import.meta.url));

async function getJson(port: number, path: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(15_000) }); // a deadline of its own: a worker that never answers fails here
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const eventually = (check: () => unknown, timeoutMs = 10_000) => poll(check, timeoutMs, 50);

describe("cluster-query across real Node cluster workers", () => {
  let primary: ChildProcess;
  let workers: Array<{ pid: number; port: number }>;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    primary = spawn(process.execPath, [fixture], { env: { ...process.env, WORKERS: "3" }, stdio: ["ignore", "pipe", "inherit"] });
    const [line] = (await once(createInterface({ input: primary.stdout! }), "line", { signal: AbortSignal.timeout(30_000) }).catch((error: unknown) => {
      throw new Error("timed out after 30000 ms waiting for the cluster fixture to print its workers", { cause: error });
    })) as [string];
    workers = JSON.parse(line).workers;
    await eventually(async () => {
      for (const { port } of workers) expect((await getJson(port, "/servers")).body.count).toBe(3);
    });
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    primary.kill("SIGTERM");
    await once(primary, "exit", { signal: AbortSignal.timeout(15_000) }).catch(() => primary.kill("SIGKILL")); // stuck past its deadline: killed
  });

  const client = (port: number, userId: string) =>
    new Promise<ClientSocket>((resolve, reject) => {
      const socket = connect(`http://127.0.0.1:${port}`, { auth: { userId }, reconnection: false, forceNew: true, transports: ["websocket"] });
      clients.push(socket);
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", reject);
    });

  it("answers from every worker, then survives a worker killed with SIGKILL", { timeout: 40_000 }, async () => {
    const [w0, w1, w2] = workers as [(typeof workers)[0], (typeof workers)[0], (typeof workers)[0]];
    await client(w0.port, "alice");
    await client(w1.port, "alice");
    await client(w1.port, "bob");
    await client(w2.port, "carol");
    await eventually(async () => {
      for (const { port } of workers) {
        expect(((await getJson(port, "/users")).body.users as string[]).sort()).toEqual(["alice", "bob", "carol"]);
      }
    });
    expect((await getJson(w0.port, "/online?userId=carol")).body.online).toBe(true);

    process.kill(w2.pid, "SIGKILL");
    // answered by the store's request timeout while the dead worker is still counted (expected: 2), not after the adapter dropped it
    const [strict, partial] = await Promise.all([getJson(w0.port, "/users"), getJson(w1.port, "/snapshot")]);
    expect(strict).toEqual({ status: 503, body: { error: "NODES_UNRESPONSIVE", missing: 1, expected: 2 } });
    expect(partial.body.partial).toBe(true);
    expect(partial.body.missingNodes).toBe(1);

    // once the adapter drops the dead worker, its users are gone and answers are whole
    await eventually(async () => {
      const { status, body } = await getJson(w0.port, "/users");
      expect(status).toBe(200);
      expect((body.users as string[]).sort()).toEqual(["alice", "bob"]);
    }, 15_000);
    // each worker drops the dead one on its own heartbeat clock
    await eventually(async () => expect((await getJson(w1.port, "/online?userId=carol")).body.online).toBe(false));
  });
});
