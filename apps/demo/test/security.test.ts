import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenSigner } from "../src/token";
import { TEST_SECRET, connectClient, eventually, fetchWithin, getJson, login, startDemo, type DemoProcess } from "./demo-process";

const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));

/** Runs the demo with these flags and env, expecting it to refuse to start; resolves with its exit code and stderr. */
function refusedStart(args: string[], env: Record<string, string> = {}): { status: number | null; stderr: string } {
  const run = spawnSync(process.execPath, [main, "--port", "0", ...args], { encoding: "utf8", timeout: 20_000, env: { ...process.env, ...env } });
  if (run.error) throw new Error(`the demo (${args.join(" ")}) did not exit within 20 s: ${run.error.message}`);
  return { status: run.status, stderr: run.stderr };
}

/** A token signed with the demo's secret but without an expiry: good forever, so refused. */
const tokenWithoutExpiry = (userId: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject(userId).setIssuedAt().sign(new TextEncoder().encode(TEST_SECRET));

const PRESENCE_ROUTES = ["/api/presence", "/api/presence/alice", "/api/rooms/general/presence"];

describe("the presence routes need a signed-in user (standalone)", () => {
  let demo: DemoProcess;
  beforeAll(async () => {
    demo = await startDemo(["--mode", "standalone", "--secret", TEST_SECRET, "--log-level", "warn"]);
  });
  afterAll(async () => {
    expect(await demo.stop()).toBe(0);
  });

  it("answers 401 with an error, and a Bearer challenge, without a valid token", async () => {
    const valid = await login(demo.url, "reader");
    const bad: Array<[string, Record<string, string>]> = [
      ["no header", {}],
      ["an empty bearer", { authorization: "Bearer " }],
      ["another scheme", { authorization: `Basic ${valid}` }],
      ["the token alone", { authorization: valid }],
      ["garbage", { authorization: "Bearer garbage" }],
      ["a tampered token", { authorization: `Bearer ${valid.slice(0, -4)}AAAA` }],
      ["another signer's token", { authorization: `Bearer ${await new TokenSigner("another-secret-of-at-least-32-bytes!!").sign("reader")}` }],
      ["an expired token", { authorization: `Bearer ${await new TokenSigner(TEST_SECRET, Math.floor(Date.now() / 1000) - 120).sign("reader")}` }],
      ["a token without an expiry", { authorization: `Bearer ${await tokenWithoutExpiry("reader")}` }],
    ];
    for (const path of PRESENCE_ROUTES) {
      for (const [what, headers] of bad) {
        const res = await fetchWithin(`${demo.url}${path}`, { headers });
        expect(res.status, `${path} with ${what}`).toBe(401);
        expect(res.headers.get("www-authenticate"), `${path} with ${what}`).toMatch(/^Bearer/);
        expect(((await res.json()) as { error: unknown }).error, `${path} with ${what}`).toEqual(expect.stringContaining("Bearer"));
      }
      // a valid token, in any letter case of the scheme
      for (const scheme of ["Bearer", "bearer"]) {
        const res = await fetchWithin(`${demo.url}${path}`, { headers: { authorization: `${scheme} ${valid}` } });
        expect(res.status, `${path} with a valid token`).toBe(200);
      }
    }
    // checked before anything else: a bad room name without a token is a 401, with one a 400
    expect((await getJson(`${demo.url}/api/rooms/${"x".repeat(70)}/presence`, null)).status).toBe(401);
    expect((await getJson(`${demo.url}/api/rooms/${"x".repeat(70)}/presence`, valid)).status).toBe(400);
  });

  it("needs nothing for the login, the health check and the page", async () => {
    expect((await getJson(`${demo.url}/api/health`, null)).status).toBe(200);
    expect((await fetchWithin(demo.url)).status).toBe(200);
    const res = await fetchWithin(`${demo.url}/api/login`, { method: "POST", body: JSON.stringify({ userId: "newcomer" }) });
    expect(res.status).toBe(200);
  });

  it("refuses a token without an expiry on the socket too, counting nothing", async () => {
    await expect(connectClient(demo.url, await tokenWithoutExpiry("forever"), { transports: ["websocket"] })).rejects.toThrow("unauthorized");
    const socket = await connectClient(demo.url, await login(demo.url, "mortal"), { transports: ["websocket"] });
    await eventually(async () => expect((await getJson<{ users: string[] }>(`${demo.url}/api/presence`)).body.users).toEqual(["mortal"]), 10_000, "mortal listed");
    socket.close();
  });

  it("serves no /metrics on the public port", async () => {
    expect((await fetchWithin(`${demo.url}/metrics`)).status).toBe(404);
    expect(demo.metricsUrl).toBeUndefined();
  });
});

describe("the demo refuses to start with a weak or missing secret", () => {
  it("refuses a secret shorter than 32 bytes, as a flag or in the env", () => {
    for (const [args, env] of [
      [["--mode", "standalone", "--secret", "short"], {}],
      [["--mode", "standalone"], { PRESENCE_SECRET: "x".repeat(31) }],
      [["--mode", "cluster", "--workers", "2", "--secret", "s3cret"], {}],
    ] as Array<[string[], Record<string, string>]>) {
      const run = refusedStart(args, env);
      expect(run.status, args.join(" ")).toBe(2);
      expect(run.stderr).toMatch(/--secret must be at least 32 bytes, got \d+/);
    }
  });

  it("requires a shared secret in redis mode, before trying Redis", () => {
    const run = refusedStart(["--mode", "redis", "--redis-url", "redis://127.0.0.1:1"]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--secret \(PRESENCE_SECRET\) is required in redis mode/);
  });

  it("refuses a bad --trust-proxy, --redis-url or --metrics-port with a clear message", () => {
    const cases: Array<[string[], RegExp]> = [
      [["--trust-proxy", "sometimes"], /--trust-proxy: .*"sometimes"/],
      [["--trust-proxy", "10.0.0.0/40"], /--trust-proxy: .*"10\.0\.0\.0\/40"/],
      [["--redis-url", "http://127.0.0.1:6379"], /--redis-url: expected redis:\/\//],
      [["--redis-url", "redis+cluster://127.0.0.1"], /--redis-url: a Redis Cluster seed must be host:port/],
      [["--metrics-port", "nope"], /--metrics-port must be an integer/],
    ];
    for (const [args, message] of cases) {
      const run = refusedStart(["--mode", "standalone", ...args]);
      expect(run.status, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(message);
    }
  });

  it("starts with a long enough secret given in the env", async () => {
    const demo = await startDemo(["--mode", "standalone", "--log-level", "warn"], { PRESENCE_SECRET: "y".repeat(32) });
    try {
      const own = await new TokenSigner("y".repeat(32)).sign("carol");
      const socket = await connectClient(demo.url, own, { transports: ["websocket"] });
      socket.close();
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });
});

/** Connects with a chosen X-Forwarded-For; resolves with "connected" or the connect_error message, within a deadline. */
function attemptForwarded(url: string, token: string, forwardedFor: string): Promise<string> {
  const socket: ClientSocket = connect(url, {
    auth: { token },
    forceNew: true,
    reconnection: false,
    transports: ["websocket"],
    extraHeaders: { "x-forwarded-for": forwardedFor },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`a client forwarded for ${forwardedFor} neither connected nor was refused within 10 s`));
    }, 10_000);
    const settle = (outcome: string) => {
      clearTimeout(timer);
      socket.close();
      resolve(outcome);
    };
    socket.once("connect", () => settle("connected"));
    socket.once("connect_error", (error) => settle(error.message));
  });
}

describe("--trust-proxy: the client is the right-most hop no trusted proxy is behind", () => {
  /** Login statuses, one request at a time, each with its X-Forwarded-For (or none). */
  async function logins(url: string, forwarded: Array<string | undefined>): Promise<number[]> {
    const statuses: number[] = [];
    for (const [i, xff] of forwarded.entries()) {
      const headers: Record<string, string> = xff === undefined ? {} : { "x-forwarded-for": xff };
      statuses.push((await fetchWithin(`${url}/api/login`, { method: "POST", headers, body: JSON.stringify({ userId: `u${i}` }) })).status);
    }
    return statuses;
  }

  it("by hop count (--trust-proxy on: one proxy): what the client wrote on the left is never believed", async () => {
    const demo = await startDemo(["--mode", "standalone", "--login-rate-limit", "2", "--trust-proxy", "--log-level", "warn"]);
    try {
      // one client behind the proxy, claiming a new address each time: counted as one
      expect(await logins(demo.url, ["198.51.100.1, 203.0.113.7", "198.51.100.2, 203.0.113.7", "spoofed, 203.0.113.7"])).toEqual([200, 200, 429]);
      // another client behind the same proxy has its own budget
      expect(await logins(demo.url, ["203.0.113.8", "198.51.100.1, 203.0.113.8"])).toEqual([200, 200]);
      // garbage is dropped: the request counts as the proxy's own (the peer, 127.0.0.1)
      expect(await logins(demo.url, [undefined, "not-an-address", "999.0.0.1"])).toEqual([200, 200, 429]);
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });

  it("by address range (cluster mode: the relayed login and the handshake on a worker alike)", { timeout: 60_000 }, async () => {
    const demo = await startDemo([
      "--mode", "cluster", "--workers", "2", "--login-rate-limit", "2", "--rate-limit", "2",
      "--trust-proxy", "127.0.0.1,10.0.0.0/8", "--log-level", "warn",
    ]);
    try {
      // 10.1.2.3 is a trusted proxy, 203.0.113.9 is not: the client; the left-most entry is its own claim
      expect(await logins(demo.url, ["198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9, 10.9.9.9", "1.1.1.1, 203.0.113.9"])).toEqual([
        200, 200, 429,
      ]);
      // the same rule for Socket.IO handshakes, with their own budget (2 attempts a minute per address)
      const token = await login(demo.url, "handshaker"); // from the peer itself: its own budget
      const outcomes: string[] = [];
      for (const xff of ["198.51.100.1, 203.0.113.20, 10.0.0.1", "198.51.100.2, 203.0.113.20", "203.0.113.20, 10.0.0.7"]) {
        outcomes.push(await attemptForwarded(demo.url, token, xff));
      }
      expect(outcomes).toEqual(["connected", "connected", "rate limited"]);
      expect(await attemptForwarded(demo.url, token, "203.0.113.21, 10.0.0.1")).toBe("connected");
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });
});
