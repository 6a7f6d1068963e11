import { createServer } from "node:http";
import { toPresenceError, type PresenceStore } from "@presence/core";
import type { Presence } from "@presence/socketio";
import { AggregatorRegistry, Counter, Gauge, Histogram, collectDefaultMetrics, register } from "prom-client";
import { limitServer, serverOptions, type ConnectionLimits } from "./connection-limits";

/**
 * `/metrics` in Prometheus text format, served on `--metrics-port` only. The
 * packages take no metrics dependency: the demo feeds prom-client from what
 * they expose (the binding's events, the store's `onTransition`, and a
 * timing wrapper around the store). In the cluster modes the primary serves
 * every worker's metrics, summed (prom-client's AggregatorRegistry); gauges
 * that already describe the whole deployment take the max instead of the sum.
 */
export class DemoMetrics {
  readonly transitions = new Counter({
    name: "presence_transitions_total",
    help: "Transitions this process announced (connected, disconnected, updated, joined, left).",
    labelNames: ["type"],
  });
  readonly storeAnnounced = new Counter({
    name: "presence_store_announced_total",
    help: "Transitions the store found on its own: crash cleanups and the leaves they announced, republished connections, rooms left by a disconnect.",
    labelNames: ["type"],
  });
  readonly storeCalls = new Histogram({
    name: "presence_store_call_duration_seconds",
    help: "Latency of store calls, by call.",
    labelNames: ["call"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  });
  readonly errors = new Counter({
    name: "presence_errors_total",
    help: "Errors, by kind (PresenceError codes, and refusals of the demo's limits).",
    labelNames: ["code"],
  });
  readonly refused = new Counter({
    name: "presence_refused_connections_total",
    help: "Socket.IO connections refused, by reason.",
    labelNames: ["reason"],
  });
  readonly evicted = new Counter({
    name: "presence_evicted_connections_total",
    help: "Connections that lost their tab slot to a newer connection of their user (the slot's holder was disconnected, when it was still open).",
  });

  constructor(presence: () => Presence | undefined, localConnections: () => number) {
    collectDefaultMetrics();
    new Gauge({
      name: "presence_users_online",
      help: "Users online across the deployment, as the store counts them.",
      aggregator: "max",
      async collect() {
        const tracked = presence();
        if (tracked) this.set(await tracked.usersCount());
      },
    });
    new Gauge({
      name: "presence_connections",
      help: "Socket.IO connections open on this process (summed over the cluster's workers).",
      collect() {
        this.set(localConnections());
      },
    });
  }

  /** Counts what the binding announces and what its store found on its own. */
  observe(presence: Presence): void {
    for (const type of ["connected", "disconnected", "updated", "joined", "left"] as const) {
      presence.on(type, () => this.transitions.inc({ type }));
    }
    presence.on("error", (error) => this.errors.inc({ code: toPresenceError(error).code }));
    presence.store.onTransition((transition) => this.storeAnnounced.inc({ type: transition.type }));
  }

  /** The store with each call timed: the binding cannot tell the difference. */
  timed(store: PresenceStore): PresenceStore {
    const histogram = this.storeCalls;
    const errors = this.errors;
    return new Proxy(store, {
      get(target, property) {
        // the target as receiver: getters and methods use private fields
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === "users" || property === "roomUsers" || property === "onTransition" || property === "onError") return method.bind(target);
        return async (...args: unknown[]) => {
          const end = histogram.startTimer({ call: String(property) });
          try {
            return await method.apply(target, args);
          } catch (error) {
            errors.inc({ code: toPresenceError(error).code });
            throw error;
          } finally {
            end();
          }
        };
      },
    });
  }
}

export const METRICS_CONTENT_TYPE = register.contentType;

/** In the primary (before forking): the text of every worker's metrics, aggregated. */
export function setupMetricsPrimary(): () => Promise<string> {
  const aggregator = new AggregatorRegistry();
  return () => aggregator.clusterMetrics();
}

/** In a worker: lets the primary's AggregatorRegistry collect this worker's metrics. */
export function setupMetricsWorker(): void {
  new AggregatorRegistry();
}

/** This process's own metrics (standalone). */
export const processMetrics = (): Promise<string> => register.metrics();

/**
 * Serves `GET /metrics` on 127.0.0.1 only, never on the public port: metrics
 * tell who is busy and when, for the operator's scraper alone. Resolves with
 * the port it listens on (`port` 0 takes a free one).
 */
export async function serveMetrics(port: number, text: () => Promise<string>, limits: ConnectionLimits): Promise<number> {
  const server = createServer(serverOptions(limits), (request, response) => {
    if (request.method !== "GET" || request.url?.split("?")[0] !== "/metrics") {
      return void response.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /metrics\n");
    }
    text().then(
      (body) => response.writeHead(200, { "content-type": METRICS_CONTENT_TYPE }).end(body),
      (error: Error) => response.writeHead(503, { "content-type": "text/plain" }).end(`metrics unavailable: ${error.message}\n`),
    );
  });
  limitServer(server, limits);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return (server.address() as { port: number }).port;
}
