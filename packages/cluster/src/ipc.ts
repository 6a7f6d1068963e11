import cluster, { type Worker } from "node:cluster";
import createDebug from "debug";
import type { PrimaryChannel, WorkerChannel } from "./channel";
import { isPrimaryEnvelope, isWorkerEnvelope, type PrimaryEnvelope, type WorkerEnvelope } from "./messages";

const debug = createDebug("presence:cluster:ipc");

/** How long to wait, after a worker's exit, for its IPC channel to close before declaring it gone. */
const GONE_GRACE_MS = 200;

/**
 * The primary's end over the Node cluster IPC channel: works with the default
 * json serialization and with `cluster.setupPrimary({ serialization: "advanced" })`
 * (our messages are plain data either way).
 */
export function clusterPrimaryChannel(): PrimaryChannel {
  const messageListeners = new Set<(peer: string, envelope: WorkerEnvelope) => void>();
  const goneListeners = new Set<(peer: string) => void>();
  const otherListeners = new Set<(peer: string) => void>();
  const onMessage = (worker: Worker, message: unknown) => {
    const peer = String(worker.id);
    if (!isWorkerEnvelope(message)) {
      // sticky's, the cluster adapter's, the app's: only their place in the stream matters
      for (const listener of otherListeners) listener(peer);
      return;
    }
    for (const listener of messageListeners) listener(peer, message);
  };
  const onExit = (worker: Worker) => {
    const peer = String(worker.id);
    let reported = false;
    const gone = () => {
      if (reported) return;
      reported = true;
      clearTimeout(timer);
      for (const listener of goneListeners) listener(peer);
    };
    // 'exit' can come before the last messages on the channel are read: wait for the channel to close,
    // so that a hand-off the worker acknowledged just before dying is not handed out again
    const timer = setTimeout(gone, worker.isConnected() ? GONE_GRACE_MS : 0);
    if (worker.isConnected()) worker.once("disconnect", gone);
  };
  cluster.on("message", onMessage);
  cluster.on("exit", onExit);

  return {
    send(peer: string, envelope: PrimaryEnvelope): boolean {
      const worker = cluster.workers?.[peer];
      if (!worker || !worker.isConnected()) return false;
      try {
        worker.send(envelope, undefined, (error: Error | null) => {
          if (error) debug("could not send to worker %s: %s", peer, error.message);
        });
        return true;
      } catch (error) {
        debug("could not send to worker %s: %s", peer, (error as Error).message);
        return false;
      }
    },
    onMessage: (listener) => void messageListeners.add(listener),
    onPeerGone: (listener) => void goneListeners.add(listener),
    onOtherMessage: (listener) => void otherListeners.add(listener),
    close() {
      cluster.off("message", onMessage);
      cluster.off("exit", onExit);
      messageListeners.clear();
      goneListeners.clear();
      otherListeners.clear();
    },
  };
}

/** A worker's end over the Node cluster IPC channel (`process.send` / `process.on("message")`). */
export function clusterWorkerChannel(): WorkerChannel {
  return {
    send(envelope: WorkerEnvelope): boolean {
      if (!process.send || !process.connected) return false;
      try {
        process.send(envelope, undefined, undefined, (error: Error | null) => {
          if (error) debug("could not send to the primary: %s", error.message);
        });
        return true;
      } catch (error) {
        debug("could not send to the primary: %s", (error as Error).message);
        return false;
      }
    },
    onMessage(listener) {
      const onMessage = (message: unknown) => {
        if (isPrimaryEnvelope(message)) listener(message);
      };
      process.on("message", onMessage);
      return () => process.off("message", onMessage);
    },
    onGone(listener) {
      process.on("disconnect", listener);
      return () => process.off("disconnect", listener);
    },
  };
}
