import cluster, { type Worker } from "node:cluster";
import { createServer } from "node:http";
import { setupPrimary as setupPresencePrimary } from "@presence/cluster";
import { setupPrimary as setupClusterAdapterPrimary } from "@socket.io/cluster-adapter";
import { setupMaster as setupStickyPrimary, setupWorker as setupStickyWorker } from "@presence/sticky";
import createDebug from "debug";
import { createDemoApp, type DemoApp } from "./app";
import { setupRecoveryPrimary } from "./cluster-recovery";
import { ConfigError, configToEnv, loadConfig, type DemoConfig } from "./config";
import { connectionLimits, limitRelay, serverOptions } from "./connection-limits";
import { createLimits, setupLimitsPrimary } from "./limits";
import { processMetrics, serveMetrics, setupMetricsPrimary, setupMetricsWorker } from "./metrics";
import { checkRedis } from "./redis";
import { RECOVERY_WINDOW_MS, modeParts } from "./stores";
import { createTabSlots, setupTabSlotsPrimary } from "./tabs";

const debug = createDebug("presence:demo");

/** How long a worker gets to say goodbye on shutdown before it is killed, and a process before it exits anyway. */
const SHUTDOWN_GRACE_MS = 5000;

/** Closes the app and exits: 0 once it closed, 1 (said on stderr) if closing failed or passed its deadline. */
function closeAndExit(app: DemoApp): Promise<void> {
  setTimeout(() => {
    console.error(`presence demo: shutdown not done after ${SHUTDOWN_GRACE_MS} ms; exiting anyway`);
    process.exit(1);
  }, SHUTDOWN_GRACE_MS).unref();
  return app.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error("presence demo: shutdown failed:", error);
      process.exit(1);
    },
  );
}

function banner(config: DemoConfig, port: number): string {
  const workers = config.mode === "standalone" ? "one process" : `${config.workers} workers`;
  return `presence demo (${config.mode}, ${workers}) listening on http://localhost:${port}`;
}

/** `/metrics` on its own port, when asked for: announced before the banner, so that whoever waits for the banner knows both. */
async function metricsPort(config: DemoConfig, text: () => Promise<string>): Promise<void> {
  if (config.metricsPort === undefined) return;
  const port = await serveMetrics(config.metricsPort, text, connectionLimits(config));
  console.log(`metrics on http://127.0.0.1:${port}/metrics`);
}

/** The app of this process (standalone) or of this worker, on the mode's store, adapter and limits. */
function createApp(config: DemoConfig): Promise<DemoApp> {
  const mode = modeParts(config);
  return createDemoApp({
    config,
    ...mode,
    limits: createLimits(config, mode.limits),
    tabs: config.maxConnectionsPerUser > 0 ? createTabSlots(config.maxConnectionsPerUser, mode.limits) : undefined,
  });
}

async function runStandalone(config: DemoConfig): Promise<void> {
  const app = await createApp(config);
  await metricsPort(config, processMetrics);
  await new Promise<void>((resolve) => app.http.listen(config.port, resolve));
  const address = app.http.address();
  console.log(banner(config, typeof address === "object" && address ? address.port : config.port));
  const stop = () => void closeAndExit(app);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

async function runPrimary(config: DemoConfig): Promise<void> {
  const limits = connectionLimits(config);
  const http = createServer(serverOptions(limits));
  setupStickyPrimary(http, { loadBalancingMethod: "least-connection" });
  limitRelay(http, limits);
  if (config.mode !== "redis") {
    setupClusterAdapterPrimary();
    // the workers' sessions and broadcasts, so that a client recovers on whichever worker it lands
    setupRecoveryPrimary({ maxDisconnectionDuration: RECOVERY_WINDOW_MS });
    setupLimitsPrimary();
    if (config.maxConnectionsPerUser > 0) setupTabSlotsPrimary(config.maxConnectionsPerUser);
  }
  // before forking: the workers' stores find the primary's presence through the env it sets
  // a dead or stopping worker's users are kept for the same grace as a closed tab: a rolling deploy is silent
  if (config.mode === "cluster") setupPresencePrimary({ leaveGraceMs: config.leaveDelayMs });
  await metricsPort(config, setupMetricsPrimary());
  cluster.setupPrimary({ serialization: "advanced" });

  let stopping = false;
  const ready = new Set<number>();
  const env = configToEnv(config);
  const fork = (): Worker => {
    const worker = cluster.fork(env);
    // the sticky primary routes nothing to a worker until it is ready
    Object.assign(worker, { acceptingConnections: false });
    worker.on("message", (message: { type?: string }) => {
      // a worker stopping on its own gets no new connections
      if (message?.type === "presence:stopping") Object.assign(worker, { acceptingConnections: false });
      if (message?.type !== "presence:ready") return;
      Object.assign(worker, { acceptingConnections: true });
      ready.add(worker.id);
      if (ready.size === config.workers && !http.listening) {
        http.listen(config.port, () => {
          const address = http.address();
          console.log(banner(config, typeof address === "object" && address ? address.port : config.port));
        });
      }
    });
    return worker;
  };

  cluster.on("exit", (worker, code, signal) => {
    ready.delete(worker.id);
    if (stopping) return;
    console.error(`worker ${worker.process.pid} died (${signal ?? code}); starting another`);
    fork();
  });

  for (let i = 0; i < config.workers; i++) fork();

  const stop = () => {
    if (stopping) return;
    stopping = true;
    http.close();
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    const killer = setTimeout(() => {
      for (const worker of workers) worker.process.kill("SIGKILL");
    }, SHUTDOWN_GRACE_MS).unref();
    let remaining = workers.length;
    if (remaining === 0) process.exit(0);
    for (const worker of workers) {
      worker.once("exit", () => {
        if (--remaining === 0) {
          clearTimeout(killer);
          process.exit(0);
        }
      });
      worker.send({ type: "presence:shutdown" });
    }
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

async function runWorker(config: DemoConfig): Promise<void> {
  setupMetricsWorker();
  const app = await createApp(config);
  setupStickyWorker(app.io);
  let closing: Promise<void> | undefined;
  const shutdown = () => {
    if (closing) return;
    process.send?.({ type: "presence:stopping" });
    closing = closeAndExit(app);
  };
  process.on("message", (message: { type?: string }) => {
    if (message?.type === "presence:shutdown") shutdown();
  });
  // a worker stopped on its own (a deploy replacing workers one at a time) stops gracefully too: its clients
  // come back on another worker with their sessions, and the primary forks a replacement
  process.on("SIGTERM", shutdown);
  // the primary owns the signals: a terminal's Ctrl-C reaches every worker too
  process.on("SIGINT", () => debug("worker %d: SIGINT left to the primary", process.pid));
  process.send?.({ type: "presence:ready" });
}

try {
  const config = loadConfig();
  if (config.mode === "standalone") await runStandalone(config);
  else if (cluster.isPrimary) {
    // fail fast and loud: a wrong --redis-url must not start a demo that never shows anyone
    if (config.mode === "redis") await checkRedis(config.redisUrl);
    await runPrimary(config);
  } else await runWorker(config);
} catch (error) {
  console.error(`presence demo: ${(error as Error).message}`);
  process.exit(error instanceof ConfigError ? 2 : 1);
}
