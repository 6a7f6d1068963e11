import cluster from "node:cluster";
import { createHash } from "node:crypto";
import createDebug from "debug";
import type { Redis } from "ioredis";
import {
  RateLimiterClusterMaster,
  RateLimiterCluster,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from "rate-limiter-flexible";
import type { DemoConfig } from "./config";

const debug = createDebug("presence:demo");

/** How long a tab slot is held when its close is never seen (a crashed worker): leaks heal within this. */
const TAB_SLOT_SECONDS = 3600;

/**
 * The demo's abuse limits, counted once for the whole deployment: in one
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
  /** Takes one of the user's open-connection slots; false when none is left. */
  openTab(userId: string): Promise<boolean>;
  /** Gives a slot back when one of the user's connections closes. */
  closeTab(userId: string): void;
}

/** Where the counts live: one process, the cluster primary, or Redis. */
export type LimitBackend = { kind: "memory" } | { kind: "cluster" } | { kind: "redis"; client: Redis };

/** Starts the cluster primary's side of the cluster limiters (call it in the primary, before forking). */
export function setupLimitsPrimary(): void {
  new RateLimiterClusterMaster();
}

function limiter(backend: LimitBackend, keyPrefix: string, points: number, duration: number): RateLimiterAbstract {
  const options = { keyPrefix: `presence-demo:${keyPrefix}`, points, duration };
  switch (backend.kind) {
    case "memory":
      return new RateLimiterMemory(options);
    case "cluster":
      return new RateLimiterCluster({ ...options, timeoutMs: 3000 });
    case "redis":
      return new RateLimiterRedis({ ...options, storeClient: backend.client, rejectIfRedisNotReady: true });
  }
}

/** true: within the limit; false: over it; a limiter failure lets the request through. */
async function within(limiter: RateLimiterAbstract, key: string): Promise<boolean> {
  try {
    await limiter.consume(key);
    return true;
  } catch (error) {
    if (error instanceof RateLimiterRes) return false;
    debug("limiter %s unavailable, letting %s through: %s", limiter.keyPrefix, key, (error as Error).message);
    return true;
  }
}

const ALWAYS = async () => true;

/** A user id is data, never part of a Redis key name: the tab limiter keys by its digest. */
const userKey = (userId: string) => createHash("sha256").update(userId).digest("base64url");

export function createLimits(config: DemoConfig, backend: LimitBackend = { kind: cluster.isWorker ? "cluster" : "memory" }): DemoLimits {
  const attempts = config.rateLimit > 0 ? limiter(backend, "attempts", config.rateLimit, 60) : undefined;
  const logins = config.loginRateLimit > 0 ? limiter(backend, "logins", config.loginRateLimit, 60) : undefined;
  const tabs = config.maxConnectionsPerUser > 0 ? limiter(backend, "tabs", config.maxConnectionsPerUser, TAB_SLOT_SECONDS) : undefined;
  return {
    connectionAttempt: attempts ? (address) => within(attempts, address) : ALWAYS,
    login: logins ? (address) => within(logins, address) : ALWAYS,
    openTab: tabs ? (userId) => within(tabs, userKey(userId)) : ALWAYS,
    closeTab(userId) {
      tabs?.reward(userKey(userId), 1).catch((error: Error) => debug("could not give back a tab slot of %s: %s", userId, error.message));
    },
  };
}
