import { isSyncRoom } from "./sync";

/**
 * Which Socket.IO rooms presence tracks, and the name presence gives each: a
 * prefix (`"chat:"`: rooms named `chat:...`, by their full name), a
 * predicate, `{ prefix }` (rooms named `prefix...`, known to presence, its
 * clients and its events by the rest of the name, so that a name a client
 * picks is never a raw Socket.IO room), or `false` for none.
 */
export type RoomsOption = string | ((room: string) => boolean) | { prefix: string } | false;

/** Maps Socket.IO rooms to presence rooms and back, as the `rooms` option says. */
export class RoomNames {
  readonly enabled: boolean;
  readonly #prefix: string | undefined;
  readonly #tracks: (room: string) => boolean;

  constructor(option: RoomsOption) {
    this.enabled = option !== false;
    this.#prefix = typeof option === "object" && option !== null ? option.prefix : undefined;
    this.#tracks =
      typeof option === "function" ? option : typeof option === "string" ? (room) => room.startsWith(option) : this.#prefix !== undefined ? () => true : () => false;
  }

  /** The presence room of a Socket.IO room a socket joined; `undefined` when presence does not track it. */
  presenceRoom(socketRoom: string): string | undefined {
    if (isSyncRoom(socketRoom)) return undefined;
    if (this.#prefix === undefined) return this.#tracks(socketRoom) ? socketRoom : undefined;
    const name = socketRoom.startsWith(this.#prefix) ? socketRoom.slice(this.#prefix.length) : "";
    return name.length > 0 ? name : undefined;
  }

  /** Whether a presence room name is one presence may track (for a subscribe). */
  tracks(room: string): boolean {
    return this.#prefix === undefined ? this.#tracks(room) : this.enabled && room.length > 0;
  }

  /** The Socket.IO room whose members are a presence room's: where its join and leave events go. */
  socketRoom(room: string): string {
    return this.#prefix === undefined ? room : `${this.#prefix}${room}`;
  }
}
