import cluster from "node:cluster";
import { createHash } from "node:crypto";
import createDebug from "debug";
import {
  RateLimiterClusterMaster,
  RateLimiterCluster,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from "rate-limiter-flexible";
import type { DemoConfig } from "./config";
import { DEMO_KEY_PREFIX, type RedisConnection } from "./redis";

const debug = createDebug("presence:demo");

/**
 * The demo's rate limits, counted once for the whole deployment: in one
 * process for standalone, in the cluster primary for the cluster modes, and
 * in Redis for every redis-mode instance. A limiter that cannot answer lets
 * the request through (an outage of the limiter must not become an outage of
 * the app) and says so in the debug log.
 */
export interface DemoLimits {
  /** False when this address made too many connection attempts this minute. */
  connectionAttempt(address: string): Promise<boolean>;
  /** False when this address logged in too often this minute. */
  login(address: string): Promise<boolean>;
}

/** Where the counts live: one process, the cluster primary, or Redis (a server or a cluster). */
export type LimitBackend = { kind: "memory" } | { kind: "cluster" } | { kind: "redis"; client: RedisConnection };

/** Starts the cluster primary's side of the cluster limiters (call it in the primary, before forking). */
export function setupLimitsPrimary(): void {
  new RateLimiterClusterMaster();
}

function limiter(backend: LimitBackend, name: string, points: number, duration: number): RateLimiterAbstract {
  // in Redis: `{presence}:demo:<name>:<digest>`, beside the store's keys and in their slot
  const options = { keyPrefix: `${DEMO_KEY_PREFIX}${name}`, points, duration };
  switch (backend.kind) {
    case "memory":
      return new RateLimiterMemory(options);
    case "cluster":
      return new RateLimiterCluster({ ...options, timeoutMs: 3000 });
    case "redis":
      return new RateLimiterRedis({ ...options, storeClient: backend.client, rejectIfRedisNotReady: true });
  }
}

/**
 * What a limit is keyed by: a digest, so that neither an address nor a user
 * id ever becomes part of a Redis key name (and keys have one length).
 */
export const limitKey = (value: string) => createHash("sha256").update(value, "utf8").digest("base64url");

/** true: within the limit; false: over it; a limiter failure lets the request through. */
async function within(limiter: RateLimiterAbstract, value: string): Promise<boolean> {
  try {
    await limiter.consume(limitKey(value));
    return true;
  } catch (error) {
    if (error instanceof RateLimiterRes) return false;
    debug("limiter %s unavailable, letting %s through: %s", limiter.keyPrefix, value, (error as Error).message);
    return true;
  }
}

const ALWAYS = async () => true;

export function createLimits(config: DemoConfig, backend: LimitBackend = { kind: cluster.isWorker ? "cluster" : "memory" }): DemoLimits {
  const attempts = config.rateLimit > 0 ? limiter(backend, "attempts", config.rateLimit, 60) : undefined;
  const logins = config.loginRateLimit > 0 ? limiter(backend, "logins", config.loginRateLimit, 60) : undefined;
  return {
    connectionAttempt: attempts ? (address) => within(attempts, address) : ALWAYS,
    login: logins ? (address) => within(logins, address) : ALWAYS,
  };
}
