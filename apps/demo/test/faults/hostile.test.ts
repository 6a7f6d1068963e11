import { createHash } from "node:crypto";
import { request } from "node:http";
import { SignJWT } from "jose";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenSigner } from "../../src/token";
import { TEST_SECRET, eventually, getJson, sleep } from "../demo-process";
import { Deployment } from "./deployment";

const signer = new TokenSigner(TEST_SECRET);
const signToken = (userId: string) => signer.sign(userId);

/** Connects from a chosen loopback address; resolves with the socket or the connect_error message, within a deadline. */
function attempt(url: string, auth: Record<string, unknown>, localAddress = "127.0.0.1"): Promise<ClientSocket | string> {
  const socket = connect(url, { auth, forceNew: true, reconnection: false, transports: ["websocket"], localAddress } as never);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`a client from ${localAddress} neither connected to ${url} nor was refused within 10 s`));
    }, 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (error) => {
      clearTimeout(timer);
      socket.close();
      resolve(error.message);
    });
  });
}

function post(url: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/api/login`, { method: "POST", headers, timeout: 10_000 }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on("timeout", () => req.destroy(new Error(`POST ${url}/api/login got no answer within 10 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

describe("hostile and bad input against the demo in redis mode", () => {
  let deployment: Deployment;
  let url: string;
  const opened: ClientSocket[] = [];

  beforeAll(async () => {
    // two instances (two workers each) on one Redis: the limits are counted once for all four workers
    deployment = await Deployment.start(["--rate-limit", "40", "--max-connections-per-user", "3"], 2);
    url = deployment.instances[0]!.url;
  });
  afterAll(async () => {
    for (const socket of opened) socket.close();
    await deployment.stop();
  });

  const keep = (result: ClientSocket | string) => {
    if (typeof result !== "string") opened.push(result);
    return result;
  };

  it("refuses missing, forged, expired and malformed tokens, counting nothing", async () => {
    const valid = await signToken("mallory");
    const [header, payload, signature] = valid.split(".");
    const none = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const tokens: unknown[] = [
      undefined,
      "",
      "garbage",
      `${header}.${payload}.`,
      `${header}.${payload}.${"A".repeat(signature!.length)}`,
      `${none}.${payload}.`, // "alg: none"
      await new TokenSigner("another-secret-of-at-least-32-bytes").sign("mallory"), // another signer
      await new TokenSigner(TEST_SECRET, Math.floor(Date.now() / 1000) - 120).sign("mallory"), // expired past the clock tolerance
      // good forever: no expiry
      await new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject("mallory").sign(new TextEncoder().encode(TEST_SECRET)),
      `${header}.${Buffer.from("{not json").toString("base64url")}.${signature}`,
      `${valid}.${signature}`,
      "x".repeat(10_000),
      { sub: "mallory" },
      12345,
    ];
    for (const [i, token] of tokens.entries()) {
      const result = keep(await attempt(url, token === undefined ? {} : { token }, `127.0.1.${i + 1}`));
      expect(result, `token #${i}`).toBe("unauthorized");
    }
    expect((await getJson(`${url}/api/presence`)).body.count).toBe(0);
  });

  it("refuses invalid user ids with a clear error, stores awkward ones as inert data under the prefix", async () => {
    for (const userId of ["", 42, null, ["a"], { id: "a" }, "x".repeat(257)]) {
      const res = await post(url, JSON.stringify({ userId }), { "content-type": "application/json" });
      expect(res.status, JSON.stringify(userId)).toBe(400);
      expect(JSON.parse(res.body).error).toMatch(/user id/);
    }
    const huge = await post(url, JSON.stringify({ userId: "x".repeat(1024 * 1024) }));
    expect(huge.status).toBe(413);

    const awkward = ["a:b", "{presence}:users", "}{", "ctrl\u0001\u0002\u001f", "nul\u0000", "*", "..\\..", "🦊"];
    for (const [i, userId] of awkward.entries()) {
      const token = await signToken(userId);
      const socket = keep(await attempt(url, { token }, `127.0.2.${i + 1}`));
      expect(typeof socket, userId).not.toBe("string");
    }
    await expect.poll(async () => ((await getJson<{ users: string[] }>(`${url}/api/presence`)).body.users ?? []).sort()).toEqual(
      [...awkward].sort(),
    );
    for (const userId of awkward) {
      expect((await getJson(`${url}/api/presence/${encodeURIComponent(userId)}`)).body.online, userId).toBe(true);
    }
    const keys = deployment.keys();
    expect(keys.length).toBeGreaterThan(0);
    // every key under the deployment's prefix, the demo's limits and tab slots too, keyed by digests of addresses and users
    for (const key of keys) expect(key.startsWith("{presence}:"), key).toBe(true);
    const limiterKeys = keys.filter((key) => key.startsWith("{presence}:demo:"));
    expect(limiterKeys.length).toBeGreaterThan(0);
    for (const key of limiterKeys) for (const userId of awkward) expect(key.includes(userId), key).toBe(false);
    for (const key of limiterKeys) expect(key.includes("127.0.2."), key).toBe(false);
    for (const socket of opened.splice(0)) socket.close();
  });

  it("answers malformed HTTP bodies with 400, never a crash", async () => {
    const bodies: Array<[string | Buffer, Record<string, string>]> = [
      ["", {}],
      ["{", { "content-type": "application/json" }],
      ['{"userId": "a"', {}],
      ["userId=alice", { "content-type": "application/x-www-form-urlencoded" }],
      [Buffer.from([0xff, 0xfe, 0x00, 0x01]), {}],
      ["[]", {}],
      ['"alice"', {}],
    ];
    for (const [body, headers] of bodies) {
      const res = await post(url, body, headers);
      expect(res.status, String(body)).toBe(400);
      expect(JSON.parse(res.body).error).toEqual(expect.any(String));
    }
    expect((await getJson(`${url}/api/health`)).body.ok).toBe(true);
  });

  it("keeps honest users working through a flood from one client and from one user", async () => {
    // one client (one IP) connecting and disconnecting in a loop, to both instances in turn
    const token = await signToken("flooder");
    const urls = deployment.instances.map((instance) => instance.url);
    const outcomes: Array<ClientSocket | string> = [];
    for (let i = 0; i < 120; i++) {
      const result = await attempt(urls[i % urls.length]!, { token }, "127.0.3.1");
      if (typeof result !== "string") result.close();
      outcomes.push(result);
    }
    const limited = outcomes.filter((o) => o === "rate limited").length;
    expect(limited).toBe(120 - 40); // 40 a minute for the whole deployment, whichever instance and worker

    // one user opening many tabs (from other IPs, over both instances): the newest 3 stay, across the deployment
    const hog = await signToken("hog");
    const evicted: string[] = [];
    const tabs: ClientSocket[] = [];
    for (let i = 0; i < 20; i++) {
      const tab = keep(await attempt(urls[i % urls.length]!, { token: hog }, `127.0.4.${i + 1}`));
      if (typeof tab === "string") throw new Error(`hog's tab #${i + 1} was refused: ${tab}`);
      tab.on("presence:evicted", ({ reason }: { reason: string }) => evicted.push(reason));
      tabs.push(tab);
    }
    await eventually(() => expect(tabs.filter((tab) => tab.connected)).toHaveLength(3), 10_000, "hog's 17 oldest tabs disconnected");
    expect(tabs.map((tab) => tab.connected)).toEqual([...Array(17).fill(false), true, true, true]);
    expect(evicted).toEqual(Array(17).fill("too many connections"));
    // counted down once the leave grace of the evicted ones ran out
    await eventually(
      async () => expect((await getJson<{ connections: Record<string, number> }>(`${url}/api/presence`)).body.connections.hog).toBe(3),
      10_000,
      "hog's 3 connections counted",
    );
    // one slot per open connection, in Redis: the evicted ones gave theirs back
    const slots = `{presence}:demo:tabs:${createHash("sha256").update("hog").digest("base64url")}`;
    expect(Number(deployment.redis.cli("ZCARD", slots))).toBe(3);
    for (const tab of tabs) tab.close();
    await eventually(() => expect(Number(deployment.redis.cli("ZCARD", slots))).toBe(0), 10_000, "hog's slots given back");

    // meanwhile an honest user is welcome, counted, and the server and Redis are healthy
    const honest = keep(await attempt(url, { token: await signToken("honest") }, "127.0.5.1"));
    expect(typeof honest).not.toBe("string");
    await expect.poll(async () => (await getJson(`${url}/api/presence/honest`)).body.online).toBe(true);
    expect((await getJson(`${url}/api/health`)).status).toBe(200);
    expect(deployment.redis.cli("PING")).toBe("PONG");
    await sleep(100);
  });
});
