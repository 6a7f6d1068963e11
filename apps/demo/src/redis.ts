import createDebug from "debug";
import { Cluster, Redis } from "ioredis";

const debug = createDebug("presence:demo");

/** The deployment's key prefix: the store's keys are `{presence}:...`, the braces being the Redis Cluster hash tag. */
export const REDIS_PREFIX = "presence";
/** The demo's own keys (its limits and tab slots) live beside the store's, under the same tag. */
export const DEMO_KEY_PREFIX = `{${REDIS_PREFIX}}:demo:`;

/** Where the deployment's Redis is: one server (`redis://`, `rediss://`) or a Redis Cluster given by seed nodes. */
export type RedisTarget =
  | { kind: "server"; url: string }
  | { kind: "cluster"; seeds: Array<{ host: string; port: number }>; tls: boolean; username?: string; password?: string };

/** A connection to either: the store, the adapter and the limiter take both. */
export type RedisConnection = Redis | Cluster;

const SEED = /^(\[[^\]]+\]|[^:[\]/@]+):(\d{1,5})$/;

/** `redis://...`, `rediss://...`, or `redis+cluster://[user:password@]host:port,host:port,...` (`rediss+cluster://` for TLS). */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new Error(`not a valid URL: ${JSON.stringify(redact(url))}`);
    }
    return { kind: "server", url };
  }
  const cluster = /^(rediss?)\+cluster:\/\/([^/?#]*)\/?$/.exec(url);
  if (!cluster) {
    throw new Error(`expected redis://host:port, rediss://host:port or redis+cluster://host:port,host:port,..., got ${JSON.stringify(redact(url))}`);
  }
  let nodes = cluster[2]!;
  const target: RedisTarget = { kind: "cluster", seeds: [], tls: cluster[1] === "rediss" };
  const at = nodes.lastIndexOf("@");
  if (at >= 0) {
    const credentials = nodes.slice(0, at);
    nodes = nodes.slice(at + 1);
    const colon = credentials.indexOf(":");
    const username = decodeURIComponent(colon >= 0 ? credentials.slice(0, colon) : credentials);
    if (username) target.username = username;
    if (colon >= 0) target.password = decodeURIComponent(credentials.slice(colon + 1));
  }
  for (const seed of nodes.split(",")) {
    const match = SEED.exec(seed.trim());
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) throw new Error(`a Redis Cluster seed must be host:port, got ${JSON.stringify(seed)}`);
    target.seeds.push({ host: match[1]!.replace(/^\[|\]$/g, ""), port });
  }
  return target;
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/** A new connection to the target, named in `CLIENT LIST` as `presence-demo:<name>:<pid>`. */
export function connectRedis(target: RedisTarget, name: string): RedisConnection {
  const connectionName = `presence-demo:${name}:${process.pid}`;
  if (target.kind === "server") return new Redis(target.url, { connectionName });
  return new Cluster(target.seeds, {
    redisOptions: {
      connectionName,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {}),
    },
  });
}

/** Fails fast: resolves when Redis answers (a cluster: with `cluster_state:ok`), rejects with a message saying what was tried. */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  const target = parseRedisUrl(url);
  const client =
    target.kind === "server"
      ? new Redis(target.url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null })
      : new Cluster(target.seeds, {
          lazyConnect: true,
          clusterRetryStrategy: () => null,
          redisOptions: {
            connectTimeout: timeoutMs,
            maxRetriesPerRequest: 0,
            ...(target.username === undefined ? {} : { username: target.username }),
            ...(target.password === undefined ? {} : { password: target.password }),
            ...(target.tls ? { tls: {} } : {}),
          },
        });
  let cause: Error | undefined;
  const remember = (error: Error) => {
    cause = error;
    debug("redis check: %s", error.message);
  };
  client.on("error", remember);
  client.on("node error", remember);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.ping();
        if (client instanceof Cluster) {
          const info = String(await client.cluster("INFO"));
          if (!info.includes("cluster_state:ok")) throw new Error(`the cluster is not ready: ${/cluster_state:\w+/.exec(info)?.[0] ?? info}`);
        }
      })(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    throw new Error(`cannot reach Redis at ${redact(url)}: ${(cause ?? (error as Error)).message}`);
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
