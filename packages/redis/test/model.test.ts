import fc from "fast-check";
import { Redis } from "ioredis";
import { expect, it } from "vitest";
import { RedisStore } from "../src";
import { startRedisProxy, type RedisProxy } from "../src/testing";
import { useRedis } from "./redis-fixture";

const redis = useRedis();
const TIMING = { heartbeatMs: 100, leaseTimeoutMs: 400, commandTimeoutMs: 300 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Reads, in one atomic step (test only): the users hash and the sum over every
// process's connections; each room's hash and the sum over every process's
// memberships of it. KEYS: users, then the rooms' keys; ARGV: the two MATCH
// patterns, then the rooms' names in the same order.
const SNAPSHOT = `
local function sum(pattern, keep)
  local sums = {}
  local cursor = '0'
  repeat
    local scan = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = scan[1]
    for _, key in ipairs(scan[2]) do
      local entries = redis.call('HGETALL', key)
      for i = 1, #entries, 2 do
        local group = keep(entries[i])
        local k = group == '' and entries[i + 1] or (group .. '|' .. entries[i + 1])
        sums[k] = (sums[k] or 0) + 1
      end
    end
  until cursor == '0'
  local flat = {}
  for k, n in pairs(sums) do flat[#flat + 1] = k; flat[#flat + 1] = n end
  return flat
end
local rooms = {}
for i = 2, #KEYS do rooms[#rooms + 1] = ARGV[i + 1]; rooms[#rooms + 1] = redis.call('HGETALL', KEYS[i]) end
local function room_of(field)
  local n = tonumber(string.match(field, '^(%d+):'))
  return string.sub(field, #tostring(n) + 2 + n)
end
return { redis.call('HGETALL', KEYS[1]), sum(ARGV[1], function() return '' end), rooms, sum(ARGV[2], room_of) }
`;

type Process = {
  store: RedisStore;
  proxy: RedisProxy;
  client: Redis;
  crashed: boolean;
  truth: Map<string, string>;
  rooms: Map<string, Set<string>>;
};
const ROOMS = ["r0", "r1"];

const commands = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant("connect" as const), p: fc.nat(2), conn: fc.nat(7), user: fc.nat(3) }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant("disconnect" as const), p: fc.nat(2), conn: fc.nat(7) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("join" as const), p: fc.nat(2), conn: fc.nat(7), room: fc.constantFrom(...ROOMS) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("leave" as const), p: fc.nat(2), conn: fc.nat(7), room: fc.constantFrom(...ROOMS) }) },
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
          return { store, proxy, client, crashed: false, truth: new Map(), rooms: new Map() };
        };
        const processes = await Promise.all([0, 1, 2].map(spawnProcess));
        const { keys } = processes[0]!.store;

        const toCounts = (flat: Array<string | number>, prefix = "") => {
          const counts: Record<string, number> = {};
          for (let i = 0; i < flat.length; i += 2) counts[prefix + String(flat[i])] = Number(flat[i + 1]);
          return counts;
        };
        /** The users hash and every room's hash, as "user" / "room|user" -> count, checked against the sums. */
        const checkInvariant = async () => {
          const [users, sums, rooms, memberships] = (await redis.admin.eval(
            SNAPSHOT,
            1 + ROOMS.length,
            keys.users,
            ...ROOMS.map((room) => keys.room(room)),
            `${keys.slots("*")}:*`, // the pages of slots
            keys.memberships("*"),
            ...ROOMS,
          )) as [string[], Array<string | number>, Array<string | string[]>, Array<string | number>];
          const hash = toCounts(users);
          for (let i = 0; i < rooms.length; i += 2) Object.assign(hash, toCounts(rooms[i + 1] as string[], `${rooms[i]}|`));
          const summed = { ...toCounts(sums), ...toCounts(memberships) };
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
                proc.rooms.delete(conn);
                await proc.store.disconnect(conn).catch(() => {});
              } else if (step.op === "join" || step.op === "leave") {
                const conn = `p${step.p}-c${step.conn}`;
                if (!proc.truth.has(conn)) continue;
                const rooms = proc.rooms.get(conn) ?? new Set<string>();
                if (step.op === "join") rooms.add(step.room);
                else rooms.delete(step.room);
                proc.rooms.set(conn, rooms);
                await proc.store[step.op](conn, step.room).catch(() => {});
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

          // Every process lost: nobody is left to clean, so the next one to
          // start must (a deploy after a total outage).
          if (processes.every((proc) => proc.crashed)) processes.push(await spawnProcess());

          // the truth: connections really open on processes still alive
          const expected: Record<string, number> = {};
          for (const proc of processes) {
            if (proc.crashed) continue;
            for (const [conn, user] of proc.truth) {
              expected[user] = (expected[user] ?? 0) + 1;
              for (const room of proc.rooms.get(conn) ?? []) expected[`${room}|${user}`] = (expected[`${room}|${user}`] ?? 0) + 1;
            }
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
