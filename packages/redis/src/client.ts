import { StoreUnavailableError } from "@presence/core";
import createDebug from "debug";
import type { Cluster, Redis } from "ioredis";

const debug = createDebug("presence:redis");

/**
 * A node-redis client (`createClient()` of `redis` 4 or 5), as far as the
 * store uses it: typed by shape, so that neither major is a dependency.
 */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(overrides?: Record<string, unknown>): NodeRedisClient;
  connect(): Promise<unknown>;
  disconnect?(): Promise<unknown>;
  destroy?(): unknown;
  on(event: "error", listener: (error: Error) => void): unknown;
  readonly isOpen: boolean;
}

/** What the `redis` option accepts. */
export type RedisClient = Redis | Cluster | NodeRedisClient;

/** What `redis` must be, said in every TypeError. */
const ACCEPTED =
  "an ioredis client (`new Redis(...)` or `new Cluster(...)`, ioredis 5 or 6) or a node-redis client (`createClient(...)`, redis 4 or 5)";

const isIoredis = (value: object): value is Redis | Cluster =>
  typeof (value as Partial<Redis>).duplicate === "function" &&
  typeof (value as Partial<Redis>).call === "function" &&
  typeof (value as { isCluster?: unknown }).isCluster === "boolean";

const isNodeRedis = (value: object): value is NodeRedisClient =>
  typeof (value as Partial<NodeRedisClient>).sendCommand === "function" &&
  typeof (value as Partial<NodeRedisClient>).duplicate === "function" &&
  typeof (value as Partial<NodeRedisClient>).connect === "function" &&
  typeof (value as { isOpen?: unknown }).isOpen === "boolean";

/** Duck-typed, so that a second copy of a client library (another major, another install) is accepted too. */
export function assertRedisClient(value: unknown): asserts value is RedisClient {
  if (typeof value === "object" && value !== null && (isIoredis(value) || isNodeRedis(value))) return;
  const kind = value === null ? "null" : typeof value === "object" ? (value.constructor?.name ?? "an object") : typeof value;
  const cluster = typeof value === "object" && value !== null && "masters" in value ? " (a node-redis cluster: use an ioredis Cluster)" : "";
  throw new TypeError(`RedisStore: the \`redis\` option must be ${ACCEPTED}; got ${kind}${cluster}`);
}

/** The store's own connection: one command at a time, as RESP2 replies (strings, integers, arrays, null). */
export interface Connection {
  send(args: readonly string[]): Promise<unknown>;
  close(): void;
}

/**
 * The store's own connection: a duplicate of the caller's client with every
 * automatic resend turned off, at the node level and (for an ioredis
 * Cluster) at the Cluster level, whose `retryDelayOnFailover` would
 * otherwise resend a command after "Connection is closed". A command whose
 * reply was lost is settled from Redis's record of it, never sent again
 * blindly. (node-redis never resends a command that was written.)
 */
export function connect(redis: RedisClient, commandTimeoutMs: number, name: string): Connection {
  if (isNodeRedis(redis)) {
    const client = redis.duplicate();
    client.on("error", (error: Error) => debug("redis connection error: %s", error.message));
    client.connect().catch((error: Error) => debug("redis connect failed: %s", error.message));
    return {
      send: (args) => client.sendCommand([...args]),
      close: () => {
        try {
          if (client.destroy) client.destroy();
          else void client.disconnect?.().catch(() => {});
        } catch {
          // already closed
        }
      },
    };
  }
  const node = {
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectionName: name,
  };
  const client = redis.isCluster
    ? (redis as Cluster).duplicate(undefined, {
        // MOVED, ASK, TRYAGAIN and CLUSTERDOWN mean "not executed": following them is safe; a closed connection is not
        retryDelayOnFailover: 0,
        redisOptions: { ...(redis as Cluster).options.redisOptions, ...node },
      })
    : (redis as Redis).duplicate(node);
  client.on("error", (error: Error) => debug("redis connection error: %s", error.message));
  return {
    send: ([command, ...args]) => client.call(command!, ...args),
    close: () => client.disconnect(),
  };
}

/**
 * Bounds a call by the store's own timer: ioredis's `commandTimeout` does not
 * cover a command waiting in a Cluster's offline queue (nor does node-redis
 * time out its offline queue). The call may still run later; every write is
 * settled from Redis's record, so that is safe.
 */
export function withTimeout<T>(call: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(`Redis did not answer ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  call.catch(() => {}); // settled after the timeout: nobody is waiting any more
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
