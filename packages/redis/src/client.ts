import { StoreUnavailableError } from "@presence/core";
import createDebug from "debug";
import type { Cluster, Redis } from "ioredis";

const debug = createDebug("presence:redis");

/**
 * A node-redis client (`createClient()` of `redis` 4, 5 or 6), as far as the
 * store uses it: typed by shape, so that no major is a dependency.
 */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(overrides?: Record<string, unknown>): NodeRedisClient;
  connect(): Promise<unknown>;
  disconnect?(): Promise<unknown>;
  destroy?(): unknown;
  on(event: "error" | "ready", listener: (error: Error) => void): unknown;
  readonly isOpen: boolean;
  // `| undefined` throughout: node-redis declares these so, and an app under exactOptionalPropertyTypes must still be able to pass its client
  readonly options?: { url?: string | undefined; socket?: { host?: string | undefined; port?: number | undefined; path?: string | undefined } | undefined } | undefined;
}

/** What the `redis` option accepts. */
export type RedisClient = Redis | Cluster | NodeRedisClient;

/** What `redis` must be, said in every TypeError. */
const ACCEPTED =
  "an ioredis client (`new Redis(...)` or `new Cluster(...)`, ioredis 5 or 6) or a node-redis client (`createClient(...)`, redis 4, 5 or 6)";

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
  const object = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const hint =
    "masters" in object
      ? " (a node-redis cluster: use an ioredis Cluster)"
      : typeof object.send_command === "function" || typeof object.sendCommand === "function"
        ? " (a client of another version: node-redis 3 and older, or a client that is not one of these)"
        : "";
  throw new TypeError(`RedisStore: the \`redis\` option must be ${ACCEPTED}; got ${kind}${hint}`);
}

/**
 * The store's own connection: one command at a time; replies as strings,
 * integers, arrays and null (the same under RESP2 and RESP3 for every
 * command and script the store sends).
 */
export interface Connection {
  /** Where it goes (host:port, a socket path, a Cluster's seed nodes): named in every "Redis down" error. */
  readonly address: string;
  /** The last error the client reported about the connection itself (refused, reset), until it is ready again. */
  readonly lastError: Error | undefined;
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
  let lastError: Error | undefined;
  const failed = (error: Error) => {
    lastError = error;
    debug("redis connection error: %s", error.message);
  };
  if (isNodeRedis(redis)) {
    // node-redis 6 times every command out after 5 s by default, and a caller's typeMapping would change the replies: the store's own timer bounds its calls
    const client = redis.duplicate({ commandOptions: { timeout: commandTimeoutMs + 1000 } });
    client.on("error", failed);
    client.on("ready", () => (lastError = undefined));
    client.connect().catch(failed);
    return {
      address: nodeRedisAddress(redis),
      get lastError() {
        return lastError;
      },
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
  client.on("error", failed);
  client.on("ready", () => (lastError = undefined));
  return {
    address: ioredisAddress(redis),
    get lastError() {
      return lastError;
    },
    send: ([command, ...args]) => client.call(command!, ...args),
    close: () => client.disconnect(),
  };
}

function nodeRedisAddress(client: NodeRedisClient): string {
  const { url, socket } = client.options ?? {};
  if (socket?.path) return socket.path;
  if (socket?.host !== undefined || socket?.port !== undefined) return `${socket.host ?? "localhost"}:${socket.port ?? 6379}`;
  if (url) {
    try {
      const { hostname, port } = new URL(url);
      return `${hostname || "localhost"}:${port || 6379}`;
    } catch {
      // not a URL node-redis would take either
    }
  }
  return "localhost:6379";
}

function ioredisAddress(client: Redis | Cluster): string {
  if (client.isCluster) {
    const nodes = (client as unknown as { startupNodes: Array<string | number | { host?: string; port?: number }> }).startupNodes ?? [];
    const named = nodes.map((node) => (typeof node === "object" ? `${node.host ?? "localhost"}:${node.port ?? 6379}` : String(node)));
    return `the Redis Cluster at ${named.join(", ")}`;
  }
  const { host, port, path } = (client as Redis).options;
  return path ? path : `${host ?? "localhost"}:${port ?? 6379}`;
}

/**
 * Whether Redis itself answered with an error (a script's error reply,
 * NOSCRIPT, WRONGTYPE), rather than the connection failing: by the class
 * each client library gives such replies (ioredis's `ReplyError`,
 * node-redis's `ErrorReply`), looked up by name so that any copy or major
 * of either library is recognized.
 */
export function isReplyError(error: unknown): boolean {
  for (let proto = error instanceof Error ? Object.getPrototypeOf(error) : null; proto && proto !== Error.prototype; proto = Object.getPrototypeOf(proto)) {
    const name = (proto as { constructor?: { name?: string } }).constructor?.name;
    if (name === "ReplyError" || name === "ErrorReply") return true;
  }
  return false;
}

/**
 * The error of a call that did not get an answer, saying where Redis is
 * and why it did not answer: the connection's own last error (`connect
 * ECONNREFUSED 127.0.0.1:6379`) rather than what the client library made
 * of it (ioredis's "Reached the max retries per request limit").
 */
export function unavailable(connection: Connection, what: string, error: unknown): StoreUnavailableError {
  if (isReplyError(error)) return new StoreUnavailableError(`Redis at ${connection.address} refused ${what}: ${(error as Error).message}`, { cause: error });
  const cause = connection.lastError?.message ?? (error instanceof Error && !/maxRetriesPerRequest/.test(error.message) ? error.message : "not connected");
  return new StoreUnavailableError(`Redis at ${connection.address} did not answer ${what}: ${cause}`, { cause: error });
}

/**
 * Bounds a call by the store's own timer: ioredis's `commandTimeout` does not
 * cover a command waiting in a Cluster's offline queue (nor does node-redis
 * time out its offline queue). The call may still run later; every write is
 * settled from Redis's record, so that is safe.
 */
export function withTimeout<T>(call: Promise<T>, timeoutMs: number, what: string, connection?: Connection): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const where = connection ? ` at ${connection.address}` : "";
      const cause = connection?.lastError ? ` (${connection.lastError.message})` : "";
      reject(new StoreUnavailableError(`Redis${where} did not answer ${what} within ${timeoutMs} ms${cause}`));
    }, timeoutMs);
  });
  call.catch(() => {}); // settled after the timeout: nobody is waiting any more
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}
