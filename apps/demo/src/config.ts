import { availableParallelism } from "node:os";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { DEFAULT_LEAVE_DELAY_MS } from "@presence/socketio";

export type Mode = "standalone" | "cluster" | "cluster-query" | "redis";
const MODES: readonly Mode[] = ["standalone", "cluster", "cluster-query", "redis"];

export interface DemoConfig {
  mode: Mode;
  port: number;
  workers: number;
  redisUrl: string;
  secret: string;
  heartbeatMs: number;
  leaseTimeoutMs: number;
  leaveDelayMs: number;
  /** Take the client address from `X-Forwarded-For` (behind a reverse proxy). */
  trustProxy: boolean;
  /** Presence on or off: off serves the same app without counting, the benchmarks' baseline. */
  presence: boolean;
  /** Open connections one user may hold across the deployment; 0 for no cap. */
  maxConnectionsPerUser: number;
  /** Socket.IO connection attempts one address may make per minute, across the deployment; 0 for no limit. */
  rateLimit: number;
  /** Logins one address may make per minute, across the deployment; 0 for no limit. */
  loginRateLimit: number;
  /** Structured request logs: pino's levels, or `silent`. */
  logLevel: string;
}

/** Each flag with its env twin; the defaults are those of docs/design.md and the demo README. */
const FLAGS = {
  mode: { env: "PRESENCE_MODE" },
  port: { env: "PORT" },
  workers: { env: "WORKERS" },
  "redis-url": { env: "REDIS_URL" },
  secret: { env: "PRESENCE_SECRET" },
  "heartbeat-ms": { env: "PRESENCE_HEARTBEAT_MS" },
  "lease-timeout-ms": { env: "PRESENCE_LEASE_TIMEOUT_MS" },
  "leave-delay-ms": { env: "PRESENCE_LEAVE_DELAY_MS" },
  "trust-proxy": { env: "PRESENCE_TRUST_PROXY" },
  presence: { env: "PRESENCE_ENABLED" },
  "max-connections-per-user": { env: "PRESENCE_MAX_CONNECTIONS_PER_USER" },
  "rate-limit": { env: "PRESENCE_RATE_LIMIT" },
  "login-rate-limit": { env: "PRESENCE_LOGIN_RATE_LIMIT" },
  "log-level": { env: "LOG_LEVEL" },
} as const;

/** Flags that may be given bare (`--trust-proxy`) to mean on. */
const SWITCHES = new Set<keyof typeof FLAGS>(["trust-proxy"]);

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export class ConfigError extends Error {}

function integer(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new ConfigError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

function onOff(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === "") return fallback;
  if (["on", "true", "1", "yes"].includes(raw)) return true;
  if (["off", "false", "0", "no"].includes(raw)) return false;
  throw new ConfigError(`--${name} must be on or off, got ${JSON.stringify(raw)}`);
}

/** Flags win over env; env wins over defaults. */
export function loadConfig(argv = process.argv.slice(2), env = process.env): DemoConfig {
  const args = argv.filter((arg) => arg !== "--");
  // a bare switch means "on": --trust-proxy
  const normalized = args.flatMap((arg, i) =>
    SWITCHES.has(arg.slice(2) as keyof typeof FLAGS) && (args[i + 1] === undefined || args[i + 1]!.startsWith("--")) ? [arg, "on"] : [arg],
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: normalized,
      options: Object.fromEntries(Object.keys(FLAGS).map((name) => [name, { type: "string" as const }])),
      strict: true,
    }));
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const get = (name: keyof typeof FLAGS) => (values[name] as string | undefined) ?? env[FLAGS[name].env];

  const mode = (get("mode") ?? "cluster") as Mode;
  if (!MODES.includes(mode)) throw new ConfigError(`--mode must be one of ${MODES.join(", ")}, got ${JSON.stringify(mode)}`);
  const logLevel = get("log-level") ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(logLevel)}`);
  return {
    mode,
    port: integer("port", get("port"), 3000, 0),
    workers: mode === "standalone" ? 1 : Math.max(2, integer("workers", get("workers"), availableParallelism(), 1)),
    redisUrl: get("redis-url") ?? "redis://127.0.0.1:6379",
    secret: get("secret") || randomBytes(32).toString("hex"),
    heartbeatMs: integer("heartbeat-ms", get("heartbeat-ms"), 5000, 1),
    leaseTimeoutMs: integer("lease-timeout-ms", get("lease-timeout-ms"), 10_000, 1),
    leaveDelayMs: integer("leave-delay-ms", get("leave-delay-ms"), DEFAULT_LEAVE_DELAY_MS, 0),
    trustProxy: onOff("trust-proxy", get("trust-proxy"), false),
    presence: onOff("presence", get("presence"), true),
    maxConnectionsPerUser: integer("max-connections-per-user", get("max-connections-per-user"), 20, 0),
    rateLimit: integer("rate-limit", get("rate-limit"), 10_000, 0),
    loginRateLimit: integer("login-rate-limit", get("login-rate-limit"), 3000, 0),
    logLevel,
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
    PRESENCE_LEAVE_DELAY_MS: String(config.leaveDelayMs),
    PRESENCE_LEASE_TIMEOUT_MS: String(config.leaseTimeoutMs),
    PRESENCE_TRUST_PROXY: config.trustProxy ? "on" : "off",
    PRESENCE_ENABLED: config.presence ? "on" : "off",
    PRESENCE_MAX_CONNECTIONS_PER_USER: String(config.maxConnectionsPerUser),
    PRESENCE_RATE_LIMIT: String(config.rateLimit),
    PRESENCE_LOGIN_RATE_LIMIT: String(config.loginRateLimit),
    LOG_LEVEL: config.logLevel,
  };
}
