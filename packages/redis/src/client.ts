import { StoreUnavailableError } from "@presence/core";
import type { Cluster, Redis } from "ioredis";

/** What `redis` must be: an ioredis client, `Redis` or `Cluster`, of ioredis 5 or 6. */
const ACCEPTED = "an ioredis client (`new Redis(...)` or `new Cluster(...)`, ioredis 5 or 6)";

/** Duck-typed, so that a second copy of ioredis (another major, another install) is accepted too. */
export function assertIoredisClient(value: unknown): asserts value is Redis | Cluster {
  const candidate = value as Partial<Redis> | null | undefined;
  const ok =
    typeof candidate === "object" &&
    candidate !== null &&
    typeof candidate.duplicate === "function" &&
    typeof candidate.defineCommand === "function" &&
    typeof (candidate as { isCluster?: unknown }).isCluster === "boolean";
  if (!ok) {
    const kind = candidate === null ? "null" : typeof candidate === "object" ? (candidate.constructor?.name ?? "an object") : typeof candidate;
    throw new TypeError(`RedisStore: the \`redis\` option must be ${ACCEPTED}; got ${kind}`);
  }
}

/**
 * The store's own connection: a duplicate of the caller's client with every
 * automatic resend turned off, at the node level and (for a Cluster) at the
 * Cluster level, whose `retryDelayOnFailover` would otherwise resend a
 * command after "Connection is closed". A command whose reply was lost is
 * settled from Redis's record of it, never sent again blindly.
 */
export function duplicateClient(redis: Redis | Cluster, commandTimeoutMs: number, name: string): Redis | Cluster {
  const node = {
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectionName: name,
  };
  if (redis.isCluster) {
    const cluster = redis as Cluster;
    return cluster.duplicate(undefined, {
      // MOVED, ASK, TRYAGAIN and CLUSTERDOWN mean "not executed": following them is safe; a closed connection is not
      retryDelayOnFailover: 0,
      redisOptions: { ...cluster.options.redisOptions, ...node },
    });
  }
  return (redis as Redis).duplicate(node);
}

/**
 * Bounds a call by the store's own timer: ioredis's `commandTimeout` does not
 * cover a command waiting in a Cluster's offline queue. The call may still
 * run later; every write is settled from Redis's record, so that is safe.
 */
export function withTimeout<T>(call: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(`Redis did not answer ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  call.catch(() => {}); // settled after the timeout: nobody is waiting any more
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
