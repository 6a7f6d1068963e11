// 9. Presence sharded over a Redis Cluster: one RedisStore with 12 buckets on
// 3 masters, beside the same store on a one-master cluster, and beside one
// bucket (the layout before buckets) on one master, in one run. This machine has 2 cores, so wall-clock
// throughput cannot show the growth with masters; what grows with them is
// measured instead: each master's share of the store's operations (each
// user's bucket, and so master, is known), the Redis CPU each master spends
// per operation it serves and the commands it runs for it (`INFO
// commandstats`, every command counted: the count does not depend on how
// busy the two cores are, the microseconds do), the
// client's own CPU per operation, and Redis memory per online user. Then
// `usersCount()` (one HLEN per bucket, pipelined per master) with every user
// online, beside HLEN of the one-master deployment's users hash.
import { randomUUID } from "node:crypto";
import { bucketOf, bucketTags, RedisStore } from "@presence/redis";
import { startRedisCluster } from "@presence/redis/testing";
import { Cluster } from "ioredis";
import { withDeadline } from "./lib/deadline.mjs";
import { percentile, summarize } from "./lib/measure.mjs";

const BUCKETS = 12;

/** CRC16 slot of a bucket tag, from Redis itself. */
async function slotOf(client, tag) {
  return Number(await client.cluster("KEYSLOT", `{${tag}}`));
}

/** Every command's calls (scripts' own commands included) and microseconds on one node since its last CONFIG RESETSTAT. */
function redisWork(node) {
  let calls = 0;
  let micros = 0;
  for (const line of node.cli("INFO", "commandstats").split("\n")) {
    const match = /calls=(\d+),usec=(\d+)/.exec(line);
    if (match) [calls, micros] = [calls + Number(match[1]), micros + Number(match[2])];
  }
  return { calls, micros };
}

const usedMemory = (node) => Number(/used_memory:(\d+)/.exec(node.cli("INFO", "memory"))[1]);

/**
 * `users` users connect (one connection each, 256 callers), then disconnect:
 * the ops per master, the Redis and client CPU per op, the memory per user
 * while all are online, and the count's latency then.
 */
export async function run(cluster, buckets, users) {
  const client = new Cluster(cluster.ports.map((port) => ({ host: "127.0.0.1", port })), { redisOptions: { commandTimeout: 60_000 } });
  client.on("error", () => {});
  await withDeadline(client.ping(), 15_000, "the Redis Cluster to answer");
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const store = new RedisStore({ redis: client, prefix, buckets, commandTimeoutMs: 60_000 });
  store.onError(() => {});
  await withDeadline(store.settled(), 30_000, "the store to register in every bucket");
  // each bucket's master, so that each op is counted where it runs
  const masterOfBucket = [];
  for (const tag of bucketTags(prefix, buckets)) masterOfBucket.push(cluster.masterOf(await slotOf(client, tag)).port);
  const masters = cluster.masters().map(({ node }) => node);
  const opsOn = new Map(masters.map((node) => [node.port, 0]));
  for (const node of masters) node.cli("CONFIG", "RESETSTAT");
  const memoryBefore = masters.map(usedMemory);
  const cpuBefore = process.cpuUsage();
  const callers = 256;
  const started = process.hrtime.bigint();
  const phase = (op) =>
    Promise.all(
      Array.from({ length: callers }, async (_, caller) => {
        for (let u = caller; u < users; u += callers) {
          const userId = `u${u}`;
          await op(`c${u}`, userId);
          const port = masterOfBucket[bucketOf(userId, buckets)];
          opsOn.set(port, opsOn.get(port) + 1);
        }
      }),
    );
  await phase((c, u) => store.connect(c, u));
  const connected = process.hrtime.bigint();
  const bytesPerUser = (masters.map(usedMemory).reduce((a, b) => a + b, 0) - memoryBefore.reduce((a, b) => a + b, 0)) / users;
  const counts = [];
  for (let i = 0; i < 50; i++) {
    const t = process.hrtime.bigint();
    const count = await store.usersCount();
    counts.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (count !== users) throw new Error(`usersCount() said ${count}, expected ${users}`);
  }
  const disconnecting = process.hrtime.bigint();
  await phase((c) => store.disconnect(c));
  const seconds = Number(process.hrtime.bigint() - started - (disconnecting - connected)) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const ops = 2 * users;
  const shares = masters.map((node) => opsOn.get(node.port) / ops);
  const work = masters.map((node) => ({ ...redisWork(node), ops: opsOn.get(node.port) }));
  await store.close();
  client.disconnect();
  return {
    opsPerSecond: ops / seconds,
    clientMicrosPerOp: (cpu.user + cpu.system) / ops,
    shareDeviation: Math.max(...shares.map((share) => Math.abs(share - 1 / masters.length) * masters.length)) * 100,
    redisMicrosPerOp: Math.max(...work.map(({ micros, ops: served }) => micros / served)),
    redisCallsPerOp: Math.max(...work.map(({ calls, ops: served }) => calls / served)),
    bytesPerUser,
    countMs: percentile(counts, 50),
  };
}

export async function clusterSharding({ smoke }) {
  const users = smoke ? 5_000 : 200_000;
  const bigUsers = smoke ? 20_000 : 1_000_000;
  const [one, three] = await Promise.all([startRedisCluster(1), startRedisCluster(3)]);
  try {
    const runs = smoke ? 1 : 3;
    // the same store on 3 masters and on 1, and on 1 master with the layout before buckets; who goes first turns each round
    const contenders = [() => run(three, BUCKETS, users), () => run(one, BUCKETS, users), () => run(one, 1, users)];
    const results = contenders.map(() => []);
    for (let round = 0; round < runs; round++) {
      for (let k = 0; k < contenders.length; k++) {
        const i = (k + round) % contenders.length;
        results[i].push(await contenders[i]());
      }
    }
    const [sharded, oneMaster, oneBucket] = results;
    const big = await run(three, BUCKETS, bigUsers);
    const bigSingle = await run(one, 1, bigUsers);
    const of = (list, key) => summarize(list.map((result) => result[key]));
    const bench = "9. Redis Cluster sharding";
    const same = `1 master, ${BUCKETS} buckets`;
    const before = "1 master, 1 bucket";
    const ours = `3 masters, ${BUCKETS} buckets`;
    return [
      { bench, subject: `${ours}: store ops`, peer: same, unit: "ops/s (2 cores: bounded by the client)", ours: of(sharded, "opsPerSecond"), theirs: of(oneMaster, "opsPerSecond") },
      { bench, subject: `${ours}: store ops`, peer: before, unit: "ops/s (2 cores: bounded by the client)", ours: of(sharded, "opsPerSecond"), theirs: of(oneBucket, "opsPerSecond") },
      { bench, subject: `${ours}: the busiest master's share of the ops, off the even third`, peer: "", unit: "% of the mean", lowerIsBetter: true, ours: of(sharded, "shareDeviation") },
      { bench, subject: `${ours}: Redis CPU per op on the busiest master`, peer: same, unit: "µs/op (commandstats)", lowerIsBetter: true, ours: of(sharded, "redisMicrosPerOp"), theirs: of(oneMaster, "redisMicrosPerOp") },
      { bench, subject: `${ours}: Redis commands per op on the busiest master`, peer: same, unit: "commands/op (commandstats, scripts' own included)", lowerIsBetter: true, ours: of(sharded, "redisCallsPerOp"), theirs: of(oneMaster, "redisCallsPerOp") },
      { bench, subject: `${same}: Redis CPU per op`, peer: before, unit: "µs/op (commandstats)", lowerIsBetter: true, ours: of(oneMaster, "redisMicrosPerOp"), theirs: of(oneBucket, "redisMicrosPerOp") },
      { bench, subject: `${ours}: the client's CPU per op`, peer: same, unit: "µs/op", lowerIsBetter: true, ours: of(sharded, "clientMicrosPerOp"), theirs: of(oneMaster, "clientMicrosPerOp") },
      { bench, subject: `${ours}: the client's CPU per op`, peer: before, unit: "µs/op", lowerIsBetter: true, ours: of(sharded, "clientMicrosPerOp"), theirs: of(oneBucket, "clientMicrosPerOp") },
      { bench, subject: `${ours}: Redis memory per online user`, peer: before, unit: "bytes", lowerIsBetter: true, ours: of(sharded, "bytesPerUser"), theirs: of(oneBucket, "bytesPerUser") },
      { bench, subject: `${ours}: usersCount() with ${bigUsers.toLocaleString("en")} users online`, peer: `${before}, same users`, unit: "ms (median of 50)", lowerIsBetter: true, ours: summarize([big.countMs]), theirs: summarize([bigSingle.countMs]) },
    ];
  } finally {
    await Promise.allSettled([one.stop(), three.stop()]);
  }
}
