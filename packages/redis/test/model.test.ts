import fc from "fast-check";
import { Redis } from "ioredis";
import { expect, it } from "vitest";
import { RedisStore } from "../src";
import { startRedisProxy, type RedisProxy } from "../src/testing";
import { useRedis } from "./redis-fixture";

const redis = useRedis();
const TIMING = { heartbeatMs: 100, leaseTimeoutMs: 400, commandTimeoutMs: 300 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Reads the users hash and every process's connections in one atomic step (test only).
const SNAPSHOT = `
local users = redis.call('HGETALL', KEYS[1])
local sums = {}
local cursor = '0'
repeat
  local scan = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = scan[1]
  for _, key in ipairs(scan[2]) do
    local entries = redis.call('HGETALL', key)
    for i = 2, #entries, 2 do sums[entries[i]] = (sums[entries[i]] or 0) + 1 end
  end
until cursor == '0'
local flat = {}
for user, n in pairs(sums) do flat[#flat + 1] = user; flat[#flat + 1] = n end
return { users, flat }
`;

type Process = { store: RedisStore; proxy: RedisProxy; client: Redis; crashed: boolean; truth: Map<string, string> };

const commands = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("connect" as const), p: fc.nat(2), conn: fc.nat(7), user: fc.nat(3) }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("disconnect" as const), p: fc.nat(2), conn: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("crash" as const), p: fc.nat(2) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("pause" as const), p: fc.nat(2) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("cleanup" as const) }) },
  ),
  { minLength: 5, maxLength: 18 },
);

it(
  "keeps the users hash equal to the sum over processes, never negative, and converges to the truth",
  { timeout: 240_000 },
  async () => {
    await fc.assert(
      fc.asyncProperty(commands, async (steps) => {
        const deployment = redis.deployment(TIMING);
        const spawnProcess = async (): Promise<Process> => {
          const proxy = await startRedisProxy(redis.server.port);
          const client = new Redis(proxy.url, { maxRetriesPerRequest: 0 });
          client.on("error", () => {});
          const store = new RedisStore({ redis: client, prefix: deployment.prefix, ...TIMING });
          store.onError(() => {});
          return { store, proxy, client, crashed: false, truth: new Map() };
        };
        const processes = await Promise.all([0, 1, 2].map(spawnProcess));
        const { keys } = processes[0]!.store;

        const checkInvariant = async () => {
          const [users, sums] = (await redis.admin.eval(SNAPSHOT, 1, keys.users, keys.connections("*"))) as [string[], Array<string | number>];
          const hash: Record<string, number> = {};
          for (let i = 0; i < users.length; i += 2) hash[users[i]!] = Number(users[i + 1]);
          const summed: Record<string, number> = {};
          for (let i = 0; i < sums.length; i += 2) summed[String(sums[i])] = Number(sums[i + 1]);
          for (const count of Object.values(hash)) expect(count).toBeGreaterThanOrEqual(1);
          expect(hash).toEqual(summed);
          return hash;
        };

        try {
          for (const step of steps) {
            if (step.op === "cleanup") {
              await sleep(TIMING.heartbeatMs * 2);
            } else {
              const proc = processes[step.p]!;
              if (proc.crashed) continue;
              if (step.op === "connect") {
                const conn = `p${step.p}-c${step.conn}`;
                const owner = proc.truth.get(conn);
                if (owner !== undefined && owner !== `u${step.user}`) continue;
                proc.truth.set(conn, `u${step.user}`);
                await proc.store.connect(conn, `u${step.user}`).catch(() => {});
              } else if (step.op === "disconnect") {
                const conn = `p${step.p}-c${step.conn}`;
                proc.truth.delete(conn);
                await proc.store.disconnect(conn).catch(() => {});
              } else if (step.op === "crash") {
                proc.crashed = true; // cut off for good: to Redis, a lost host
                proc.proxy.cut();
              } else {
                proc.proxy.cut(); // a partition past the lease: declared dead, then back
                await sleep(TIMING.leaseTimeoutMs + 3 * TIMING.heartbeatMs);
                proc.proxy.restore();
              }
            }
            await checkInvariant();
          }

          // the truth: connections really open on processes still alive
          const expected: Record<string, number> = {};
          for (const proc of processes) {
            if (proc.crashed) continue;
            for (const user of proc.truth.values()) expected[user] = (expected[user] ?? 0) + 1;
          }
          const deadline = Date.now() + 2 * TIMING.leaseTimeoutMs + 2000;
          for (;;) {
            const hash = await checkInvariant();
            if (JSON.stringify(Object.entries(hash).sort()) === JSON.stringify(Object.entries(expected).sort())) break;
            if (Date.now() > deadline) expect(hash).toEqual(expected);
            await sleep(25);
          }
        } finally {
          for (const proc of processes) {
            if (!proc.crashed) await proc.store.close().catch(() => {});
            else void proc.store.close().catch(() => {});
            proc.client.disconnect();
            await proc.proxy.close();
          }
        }
      }),
      { numRuns: 8 },
    );
  },
);
