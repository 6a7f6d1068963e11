import { spawnSync } from "node:child_process";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenSigner } from "../src/token";
import { TEST_SECRET, connectClient, eventually, fetchWithin, getJson, login, metricSample, startDemo, type DemoProcess } from "./demo-process";

/** One request on a given agent (so a keep-alive connection can be reused), with a deadline. */
function send(
  url: string,
  { method = "GET", body, agent, headers = {} }: { method?: string; body?: string; agent?: Agent; headers?: Record<string, string> },
): Promise<{ status: number; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: { "content-type": "application/json", ...headers }, timeout: 5000 }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, body: text, reused: req.reusedSocket }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} got no answer within 5 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

describe("the demo's HTTP side (standalone)", () => {
  let demo: DemoProcess;
  beforeAll(async () => {
    demo = await startDemo(["--mode", "standalone", "--login-rate-limit", "3", "--secret", TEST_SECRET, "--log-level", "warn"]);
  });
  afterAll(async () => {
    expect(await demo.stop()).toBe(0);
  });

  it("answers a 413 and then good requests on the same keep-alive connection", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const huge = await send(`${demo.url}/api/login`, { method: "POST", agent, body: JSON.stringify({ userId: "x".repeat(2 * 1024 * 1024) }) });
      expect(huge.status).toBe(413);
      expect(JSON.parse(huge.body).error).toMatch(/body over/);
      for (let i = 0; i < 3; i++) {
        const health = await send(`${demo.url}/api/health`, { agent });
        expect(health.status).toBe(200);
        expect(JSON.parse(health.body)).toMatchObject({ ok: true, mode: "standalone" });
      }
    } finally {
      agent.destroy();
    }
  });

  it("ignores X-Forwarded-For without --trust-proxy (see security.test.ts for the trusted hops)", async () => {
    // every forwarded address is the same peer, 127.0.0.1, with 3 logins a minute
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await send(`${demo.url}/api/login`, {
        method: "POST",
        body: JSON.stringify({ userId: `proxied-${i}` }),
        headers: { "x-forwarded-for": `203.0.113.${i + 1}` },
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it("accepts its own JWTs and refuses one from another signer", async () => {
    const own = await new TokenSigner(TEST_SECRET).sign("carol");
    const socket = await connectClient(demo.url, own, { transports: ["websocket"] });
    socket.close();
    const foreign = await new TokenSigner("someone-else-with-a-secret-of-32-bytes").sign("carol");
    await expect(connectClient(demo.url, foreign, { transports: ["websocket"] })).rejects.toThrow("unauthorized");
  });
});

describe("the demo's metrics and limits (cluster mode, counted once for the cluster)", () => {
  it("reports /metrics, on the metrics port only, that match /api/presence after a storm", { timeout: 60_000 }, async () => {
    const demo = await startDemo(["--mode", "cluster", "--workers", "2", "--metrics-port", "0", "--log-level", "warn"]);
    const sockets: ClientSocket[] = [];
    try {
      const users = Array.from({ length: 100 }, (_, i) => `storm-${i}`);
      const tokens = await Promise.all(users.map((userId) => login(demo.url, userId)));
      for (let i = 0; i < tokens.length; i += 25) {
        const wave = tokens.slice(i, i + 25).flatMap((token) => [token, token]);
        sockets.push(...(await Promise.all(wave.map((token, j) => connectClient(demo.url, token, { transports: j % 2 ? ["polling"] : ["websocket"] })))));
      }
      for (const socket of sockets.splice(0, 50)) socket.close(); // 25 users leave, both tabs
      await eventually(async () => expect((await getJson(`${demo.url}/api/presence`)).body.count).toBe(75));
      await eventually(async () => {
        const presence = (await getJson<{ count: number; connections: Record<string, number> }>(`${demo.url}/api/presence`)).body;
        const metrics = await (await fetchWithin(demo.metricsUrl!)).text();
        expect(metricSample(metrics, "presence_users_online")).toBe(presence.count);
        expect(metricSample(metrics, "presence_connections")).toBe(Object.values(presence.connections).reduce((a, b) => a + b, 0));
        expect(metricSample(metrics, 'presence_transitions_total{type="connected"}')).toBe(100);
        expect(metricSample(metrics, 'presence_transitions_total{type="disconnected"}')).toBe(25);
      });
      // the public port has no /metrics; the metrics port listens on 127.0.0.1 alone (not on 127.0.0.2, where the public one answers)
      expect(demo.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect((await fetchWithin(`${demo.url}/metrics`)).status).toBe(404);
      expect((await fetchWithin(`${demo.url.replace("127.0.0.1", "127.0.0.2")}/api/health`)).status).toBe(200);
      await expect(fetchWithin(demo.metricsUrl!.replace("127.0.0.1", "127.0.0.2"))).rejects.toThrow(/ECONNREFUSED|fetch failed/);
      expect((await fetchWithin(demo.metricsUrl!.replace("/metrics", "/api/health"))).status).toBe(404);
    } finally {
      for (const socket of sockets) socket.close();
      expect(await demo.stop()).toBe(0);
    }
  });

  it("refuses a flood of connection attempts from one address, counted across the workers", { timeout: 60_000 }, async () => {
    const demo = await startDemo(["--mode", "cluster", "--workers", "2", "--rate-limit", "30", "--log-level", "warn"]);
    try {
      const outcomes: string[] = [];
      const open: ClientSocket[] = [];
      try {
        for (let i = 0; i < 60; i++) {
          // kept open, so the balancer alternates between the workers: a per-worker limit would let all 60 through
          const token = await login(demo.url, `flooder-${i % 10}`);
          const result = await connectClient(demo.url, token, { transports: ["websocket"] }).then(
            (socket) => {
              open.push(socket);
              return "connected";
            },
            (error: Error) => error.message,
          );
          outcomes.push(result);
        }
      } finally {
        for (const socket of open) socket.close();
      }
      expect(outcomes.filter((o) => o === "connected")).toHaveLength(30);
      expect(outcomes.filter((o) => o === "rate limited")).toHaveLength(30);
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });

  it("lets 1,000 users with 3 tabs each connect through one address within a minute, with the defaults", { timeout: 120_000 }, async () => {
    const demo = await startDemo(["--mode", "cluster", "--workers", "2", "--log-level", "warn", "--presence", "on"]);
    try {
      const users = Array.from({ length: 1000 }, (_, i) => `crowd-${i}`);
      const tokens: string[] = [];
      for (let i = 0; i < users.length; i += 100) tokens.push(...(await Promise.all(users.slice(i, i + 100).map((u) => login(demo.url, u)))));
      // in waves of 100 users (300 tabs), each wave closed before the next: 3,000 connection attempts in all
      let connected = 0;
      for (let i = 0; i < tokens.length; i += 100) {
        const wave = tokens.slice(i, i + 100).flatMap((token) => [token, token, token]);
        const sockets = await Promise.all(wave.map((token) => connectClient(demo.url, token, { transports: ["websocket"] })));
        connected += sockets.length;
        for (const socket of sockets) socket.close();
      }
      expect(connected).toBe(3000);
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });
});

describe("the demo fails fast", () => {
  it("exits non-zero with a message when Redis is unreachable at start", () => {
    const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
    const run = spawnSync(process.execPath, [main, "--mode", "redis", "--redis-url", "redis://127.0.0.1:1", "--secret", TEST_SECRET, "--port", "0"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  });

  it("exits non-zero with a message when no node of a Redis Cluster answers at start", () => {
    const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
    const url = "redis+cluster://127.0.0.1:1,127.0.0.1:2";
    const run = spawnSync(process.execPath, [main, "--mode", "redis", "--redis-url", url, "--secret", TEST_SECRET, "--port", "0"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`cannot reach Redis at ${url}: `);
  });
});
