import { DIFF, packDiff, type DiffFrame, type PackedDiff } from "@presence/core/protocol";
import type { Namespace, Socket } from "socket.io";
import { socketsIn } from "./sync-guard";

/**
 * A frame with more changes than this goes to its subscribers as a broadcast
 * of its own (encoded once for all of them); a smaller one rides in each
 * subscriber's packet of the tick.
 */
export const SHARED_FRAME_ENTRIES = 16;

const entries = (frame: DiffFrame) => (frame.joins?.length ?? 0) + (frame.leaves?.length ?? 0) + (frame.updates?.length ?? 0);

/**
 * The diff frames one tick sends from this node, gathered per socket: each
 * subscriber gets one packet per tick (`DIFF` with an array of packed frames) for
 * all it follows (the count, its rooms, its user list), not a frame per
 * scope and per changed user. Below Engine.IO every packet is a WebSocket
 * frame and a system call of its own, so that cost follows the ticks, not
 * the scopes. A large frame is broadcast alone instead: encoding it once per
 * subscriber would cost more than the frame it saves.
 */
export class TickFrames {
  readonly #namespace: Namespace;
  readonly #bySocket = new Map<Socket, PackedDiff[]>();
  /** The rooms a large frame was broadcast to this tick. */
  readonly #broadcasts = new Set<string>();

  constructor(namespace: Namespace) {
    this.#namespace = namespace;
  }

  /** A frame for every local socket in a Socket.IO room (packed once for all of them). */
  toRoom(room: string, frame: DiffFrame): void {
    const packed = packDiff(frame);
    if (entries(frame) > SHARED_FRAME_ENTRIES) {
      this.#broadcasts.add(room);
      return void this.#namespace.local.to(room).emit(DIFF, [packed]);
    }
    for (const socket of socketsIn(this.#namespace, room)) this.#add(socket, packed);
  }

  /** A frame for one local socket. */
  toSocket(socket: Socket, frame: DiffFrame): void {
    this.#add(socket, packDiff(frame));
  }

  #add(socket: Socket, packed: PackedDiff): void {
    const frames = this.#bySocket.get(socket);
    if (frames) frames.push(packed);
    else this.#bySocket.set(socket, [packed]);
  }

  /**
   * Sends each socket its packet (none to a socket gone meanwhile), through the local adapter as every
   * frame: with connection state recovery on, a plain `socket.emit` goes through the cluster's adapter
   * (a message to every node, an entry in Redis) for a frame no recovered client needs replayed.
   * Sockets given the same frames (a room's members, when only the room and the count changed) share
   * one encoding. Returns every socket sent something this tick, broadcasts included: only their
   * output can have grown.
   */
  send(): Set<Socket> {
    const { local } = this.#namespace;
    const ids = new Map<PackedDiff, number>();
    const groups = new Map<string, { frames: PackedDiff[]; socketIds: string[] }>();
    for (const [socket, frames] of this.#bySocket) {
      if (!socket.connected) continue;
      const key = frames.map((frame) => ids.get(frame) ?? ids.set(frame, ids.size).size - 1).join(",");
      const group = groups.get(key);
      if (group) group.socketIds.push(socket.id);
      else groups.set(key, { frames, socketIds: [socket.id] });
    }
    for (const { frames, socketIds } of groups.values()) local.to(socketIds).emit(DIFF, frames);
    const sent = new Set(this.#bySocket.keys());
    for (const room of this.#broadcasts) for (const socket of socketsIn(this.#namespace, room)) sent.add(socket);
    this.#bySocket.clear();
    this.#broadcasts.clear();
    return sent;
  }
}
