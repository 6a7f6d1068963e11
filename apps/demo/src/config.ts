import { availableParallelism } from "node:os";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { DEFAULT_LEAVE_DELAY_MS } from "@presence/socketio";
import { parseTrustProxy, trustProxyToString, type TrustProxy } from "./client-address";
import { parseRedisUrl } from "./redis";

export type Mode = "standalone" | "cluster" | "cluster-query" | "redis";
const MODES: readonly Mode[] = ["standalone", "cluster", "cluster-query", "redis"];

/** The shortest secret the demo accepts: HS256 wants a key at least as long as its 256-bit hash. */
export const MIN_SECRET_BYTES = 32;

export interface DemoConfig {
  mode: Mode;
  port: number;
  workers: number;
  redisUrl: string;
  secret: string;
  /** Where `/metrics` is served, on 127.0.0.1 only; `undefined`: nowhere. */
  metricsPort: number | undefined;
  heartbeatMs: number;
  leaseTimeoutMs: number;
  leaveDelayMs: number;
  /** Which proxies in front of the demo are trusted to say who the client is (`X-Forwarded-For`). */
  trustProxy: TrustProxy;
  /** Presence on or off: off serves the same app without counting, the benchmarks' baseline. */
  presence: boolean;
  /** Open connections one user may hold across the deployment (the newest wins); 0 for no cap. */
  maxConnectionsPerUser: number;
  /** Socket.IO connection attempts one address may make per minute, across the deployment; 0 for no limit. */
  rateLimit: number;
  /** Logins one address may make per minute, across the deployment; 0 for no limit. */
  loginRateLimit: number;
  /** How long a client may take to send a request's headers, ms. */
  headersTimeoutMs: number;
  /** How long a client may take to send a whole request (headers and body), ms. */
  requestTimeoutMs: number;
  /** Open HTTP connections each process (a worker, the primary's relay) holds at most. */
  maxHttpConnections: number;
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
  "metrics-port": { env: "PRESENCE_METRICS_PORT" },
  "heartbeat-ms": { env: "PRESENCE_HEARTBEAT_MS" },
  "lease-timeout-ms": { env: "PRESENCE_LEASE_TIMEOUT_MS" },
  "leave-delay-ms": { env: "PRESENCE_LEAVE_DELAY_MS" },
  "trust-proxy": { env: "PRESENCE_TRUST_PROXY" },
  presence: { env: "PRESENCE_ENABLED" },
  "max-connections-per-user": { env: "PRESENCE_MAX_CONNECTIONS_PER_USER" },
  "rate-limit": { env: "PRESENCE_RATE_LIMIT" },
  "login-rate-limit": { env: "PRESENCE_LOGIN_RATE_LIMIT" },
  "headers-timeout-ms": { env: "PRESENCE_HEADERS_TIMEOUT_MS" },
  "request-timeout-ms": { env: "PRESENCE_REQUEST_TIMEOUT_MS" },
  "max-http-connections": { env: "PRESENCE_MAX_HTTP_CONNECTIONS" },
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

/** A given secret must be long enough; redis mode needs one, since every instance must verify the others' tokens. */
function secret(raw: string | undefined, mode: Mode): string {
  if (raw === undefined || raw === "") {
    if (mode === "redis") {
      throw new ConfigError(
        "--secret (PRESENCE_SECRET) is required in redis mode: every instance of the deployment must sign and verify tokens with the same one",
      );
    }
    return randomBytes(MIN_SECRET_BYTES).toString("hex");
  }
  const bytes = Buffer.byteLength(raw, "utf8");
  if (bytes < MIN_SECRET_BYTES) {
    throw new ConfigError(`--secret must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes} (try: openssl rand -hex 32)`);
  }
  return raw;
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
  const redisUrl = get("redis-url") ?? "redis://127.0.0.1:6379";
  try {
    parseRedisUrl(redisUrl);
  } catch (error) {
    throw new ConfigError(`--redis-url: ${(error as Error).message}`);
  }
  let trustProxy: TrustProxy;
  try {
    trustProxy = parseTrustProxy(get("trust-proxy"));
  } catch (error) {
    throw new ConfigError(`--trust-proxy: ${(error as Error).message}`);
  }
  const metricsPort = get("metrics-port");
  const headersTimeoutMs = integer("headers-timeout-ms", get("headers-timeout-ms"), 10_000, 1);
  const requestTimeoutMs = integer("request-timeout-ms", get("request-timeout-ms"), 30_000, 1);
  if (requestTimeoutMs < headersTimeoutMs) {
    throw new ConfigError(`--request-timeout-ms (${requestTimeoutMs}) must be at least --headers-timeout-ms (${headersTimeoutMs})`);
  }
  return {
    mode,
    port: integer("port", get("port"), 3000, 0),
    workers: mode === "standalone" ? 1 : Math.max(2, integer("workers", get("workers"), availableParallelism(), 1)),
    redisUrl,
    secret: secret(get("secret"), mode),
    metricsPort: metricsPort === undefined || metricsPort === "" || metricsPort === "off" ? undefined : integer("metrics-port", metricsPort, 0, 0),
    heartbeatMs: integer("heartbeat-ms", get("heartbeat-ms"), 5000, 1),
    leaseTimeoutMs: integer("lease-timeout-ms", get("lease-timeout-ms"), 10_000, 1),
    leaveDelayMs: integer("leave-delay-ms", get("leave-delay-ms"), DEFAULT_LEAVE_DELAY_MS, 0),
    trustProxy,
    presence: onOff("presence", get("presence"), true),
    maxConnectionsPerUser: integer("max-connections-per-user", get("max-connections-per-user"), 20, 0),
    rateLimit: integer("rate-limit", get("rate-limit"), 10_000, 0),
    loginRateLimit: integer("login-rate-limit", get("login-rate-limit"), 3000, 0),
    headersTimeoutMs,
    requestTimeoutMs,
    maxHttpConnections: integer("max-http-connections", get("max-http-connections"), 10_000, 1),
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
    PRESENCE_METRICS_PORT: config.metricsPort === undefined ? "off" : String(config.metricsPort),
    PRESENCE_HEARTBEAT_MS: String(config.heartbeatMs),
    PRESENCE_LEAVE_DELAY_MS: String(config.leaveDelayMs),
    PRESENCE_LEASE_TIMEOUT_MS: String(config.leaseTimeoutMs),
    PRESENCE_TRUST_PROXY: trustProxyToString(config.trustProxy),
    PRESENCE_ENABLED: config.presence ? "on" : "off",
    PRESENCE_MAX_CONNECTIONS_PER_USER: String(config.maxConnectionsPerUser),
    PRESENCE_RATE_LIMIT: String(config.rateLimit),
    PRESENCE_LOGIN_RATE_LIMIT: String(config.loginRateLimit),
    PRESENCE_HEADERS_TIMEOUT_MS: String(config.headersTimeoutMs),
    PRESENCE_REQUEST_TIMEOUT_MS: String(config.requestTimeoutMs),
    PRESENCE_MAX_HTTP_CONNECTIONS: String(config.maxHttpConnections),
    LOG_LEVEL: config.logLevel,
  };
}
