import { availableParallelism } from "node:os";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

export type Mode = "standalone" | "cluster" | "redis";
const MODES: readonly Mode[] = ["standalone", "cluster", "redis"];

export interface DemoConfig {
  mode: Mode;
  port: number;
  workers: number;
  redisUrl: string;
  secret: string;
  heartbeatMs: number;
  leaseTimeoutMs: number;
  leaveDelayMs: number;
  /** Presence on or off: off serves the same app without counting, the benchmarks' baseline. */
  presence: boolean;
  /** Open connections one user may hold on one worker; 0 for no cap. */
  maxConnectionsPerUser: number;
  /** Socket.IO connections (and logins) one IP may open per minute on one worker; 0 for no limit. */
  rateLimit: number;
}

/** Each flag with its env twin and its default, as DESIGN.md lists them. */
const FLAGS = {
  mode: { env: "PRESENCE_MODE" },
  port: { env: "PORT" },
  workers: { env: "WORKERS" },
  "redis-url": { env: "REDIS_URL" },
  secret: { env: "PRESENCE_SECRET" },
  "heartbeat-ms": { env: "PRESENCE_HEARTBEAT_MS" },
  "lease-timeout-ms": { env: "PRESENCE_LEASE_TIMEOUT_MS" },
  "leave-delay-ms": { env: "PRESENCE_LEAVE_DELAY_MS" },
  presence: { env: "PRESENCE_ENABLED" },
  "max-connections-per-user": { env: "PRESENCE_MAX_CONNECTIONS_PER_USER" },
  "rate-limit": { env: "PRESENCE_RATE_LIMIT" },
} as const;

export class ConfigError extends Error {}

function integer(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new ConfigError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

function onOff(name: string, raw: string | undefined): boolean {
  if (raw === undefined || raw === "" || raw === "on") return true;
  if (raw === "off") return false;
  throw new ConfigError(`--${name} must be on or off, got ${JSON.stringify(raw)}`);
}

/** Flags win over env; env wins over defaults. */
export function loadConfig(argv = process.argv.slice(2), env = process.env): DemoConfig {
  const { values } = parseArgs({
    args: argv.filter((arg) => arg !== "--"),
    options: Object.fromEntries(Object.keys(FLAGS).map((name) => [name, { type: "string" as const }])),
    strict: true,
  });
  const get = (name: keyof typeof FLAGS) => (values[name] as string | undefined) ?? env[FLAGS[name].env];

  const mode = (get("mode") ?? "cluster") as Mode;
  if (!MODES.includes(mode)) throw new ConfigError(`--mode must be one of ${MODES.join(", ")}, got ${JSON.stringify(mode)}`);
  return {
    mode,
    port: integer("port", get("port"), 3000, 0),
    workers: mode === "standalone" ? 1 : Math.max(2, integer("workers", get("workers"), availableParallelism(), 1)),
    redisUrl: get("redis-url") ?? "redis://127.0.0.1:6379",
    secret: get("secret") || randomBytes(32).toString("hex"),
    heartbeatMs: integer("heartbeat-ms", get("heartbeat-ms"), 5000, 1),
    leaseTimeoutMs: integer("lease-timeout-ms", get("lease-timeout-ms"), 10_000, 1),
    leaveDelayMs: integer("leave-delay-ms", get("leave-delay-ms"), 0, 0),
    presence: onOff("presence", get("presence")),
    maxConnectionsPerUser: integer("max-connections-per-user", get("max-connections-per-user"), 20, 0),
    rateLimit: integer("rate-limit", get("rate-limit"), 300, 0),
  };
}

/** The config as env, for the workers: the env form works through any launcher. */
export function configToEnv(config: DemoConfig): Record<string, string> {
  return {
    PRESENCE_MODE: config.mode,
    PORT: String(config.port),
    WORKERS: String(config.workers),
    REDIS_URL: config.redisUrl,
    PRESENCE_SECRET: config.secret,
    PRESENCE_HEARTBEAT_MS: String(config.heartbeatMs),
    PRESENCE_LEASE_TIMEOUT_MS: String(config.leaseTimeoutMs),
    PRESENCE_LEAVE_DELAY_MS: String(config.leaveDelayMs),
    PRESENCE_ENABLED: config.presence ? "on" : "off",
    PRESENCE_MAX_CONNECTIONS_PER_USER: String(config.maxConnectionsPerUser),
    PRESENCE_RATE_LIMIT: String(config.rateLimit),
  };
}
