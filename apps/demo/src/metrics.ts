import cluster from "node:cluster";
import { randomUUID } from "node:crypto";
import { toPresenceError, type PresenceStore } from "@presence/core";
import type { Presence } from "@presence/socketio";
import { AggregatorRegistry, Counter, Gauge, Histogram, collectDefaultMetrics, register } from "prom-client";

/**
 * `/metrics` in Prometheus text format. The packages take no metrics
 * dependency: the demo feeds prom-client from what they expose (the
 * binding's events, the store's `onTransition`, and a timing wrapper around
 * the store). In the cluster modes every worker's metrics are summed by the
 * primary (prom-client's AggregatorRegistry), so any worker answers for the
 * whole cluster; gauges that already describe the whole deployment take the
 * max instead of the sum.
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

  /** The text to serve: this process's metrics, or the whole cluster's when this is a worker. */
  async text(): Promise<string> {
    return cluster.isWorker ? askPrimary() : register.metrics();
  }
}

export const METRICS_CONTENT_TYPE = register.contentType;

const REQUEST = "presence-demo:metrics";
const RESPONSE = "presence-demo:metrics-response";
type MetricsMessage = { type?: string; id?: string; text?: string; error?: string };

/** In the primary: answers a worker's request with every worker's metrics, aggregated. */
export function setupMetricsPrimary(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, message: MetricsMessage) => {
    if (message?.type !== REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.isConnected() && worker.send({ type: RESPONSE, id: message.id, text }),
      (error: Error) => worker.isConnected() && worker.send({ type: RESPONSE, id: message.id, error: error.message }),
    );
  });
}

const pending = new Map<string, { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();

function askPrimary(timeoutMs = 5000): Promise<string> {
  if (pending.size === 0) process.on("message", onResponse);
  const id = randomUUID();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      settle(id);
      reject(new Error(`the cluster primary did not send the metrics within ${timeoutMs} ms`));
    }, timeoutMs);
    pending.set(id, { resolve, reject, timer });
    process.send?.({ type: REQUEST, id });
  });
}

function settle(id: string) {
  const entry = pending.get(id);
  pending.delete(id);
  if (pending.size === 0) process.off("message", onResponse);
  if (entry) clearTimeout(entry.timer);
  return entry;
}

function onResponse(message: MetricsMessage): void {
  if (message?.type !== RESPONSE || message.id === undefined) return;
  const entry = settle(message.id);
  if (message.error !== undefined) entry?.reject(new Error(message.error));
  else entry?.resolve(message.text ?? "");
}

/** In a worker: lets the primary's AggregatorRegistry collect this worker's metrics. */
export function setupMetricsWorker(): void {
  new AggregatorRegistry();
}
