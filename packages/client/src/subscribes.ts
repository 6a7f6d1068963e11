import { PROTOCOL_VERSION, SUBSCRIBE, type SubscribeReply, type SyncScope } from "@presence/core/protocol";
import type { Socket } from "socket.io-client";

/** One client's subscribe, waiting for the turn to end. */
interface Pending {
  scope: SyncScope;
  request: number;
  /** Called once: with the server's reply, or with the timeout (or a reply that is not one). */
  answer(timedOut: Error | null, reply?: SubscribeReply): void;
  /** Called as it is sent (a subscribe withdrawn before, or dropped for a disconnected socket, never is). */
  sent(): void;
}

/** The most subscribes one packet carries: under a server's default `maxSubscriptions` (16) and `requestBurst` (20). */
const MAX_BATCH = 8;

/** The subscribes asked for in this turn, per socket and timeout. */
const waiting = new WeakMap<Socket, Map<number, Pending[]>>();

/**
 * Sends a subscribe at the end of the current turn, together with every
 * other subscribe asked for on the same socket (with the same timeout) in
 * that turn: the views an app makes at once cost one packet each way
 * (protocol 6), not one per view. A lone subscribe goes alone, as before.
 * The returned function withdraws the subscribe if it was not sent yet.
 */
export function sendSubscribe(socket: Socket, timeoutMs: number, pending: Pending): () => void {
  let bySocket = waiting.get(socket);
  if (!bySocket) waiting.set(socket, (bySocket = new Map()));
  let batch = bySocket.get(timeoutMs);
  if (!batch) {
    bySocket.set(timeoutMs, (batch = []));
    queueMicrotask(() => {
      bySocket.delete(timeoutMs);
      // a socket that disconnected in the turn sends nothing: its clients subscribe again on connect
      if (socket.connected) for (let i = 0; i < batch!.length; i += MAX_BATCH) send(socket.timeout(timeoutMs), batch!.slice(i, i + MAX_BATCH));
    });
  }
  batch.push(pending);
  return () => {
    const at = bySocket.get(timeoutMs) === batch ? batch!.indexOf(pending) : -1;
    if (at >= 0) batch!.splice(at, 1);
  };
}

function send(socket: Socket, batch: Pending[]): void {
  for (const pending of batch) pending.sent();
  const [first] = batch;
  if (batch.length < 2) return void (first && socket.emit(SUBSCRIBE, { v: PROTOCOL_VERSION, scope: first.scope, request: first.request }, first.answer));
  socket.emit(SUBSCRIBE, { v: PROTOCOL_VERSION, batch: batch.map(({ scope, request }) => ({ scope, request })) }, (timedOut: Error | null, replies: SubscribeReply[] | SubscribeReply) => {
    // a reply each, in order, or one refusal for all; a listener that throws keeps the others from none
    batch.forEach((pending, i) => {
      try {
        pending.answer(timedOut, Array.isArray(replies) ? replies[i] : replies);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    });
  });
}
