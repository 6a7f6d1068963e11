/**
 * The encodings the Lua scripts share (src/scripts/includes/pack.lua), in
 * TypeScript: two strings in one as "<byte length of a>:<a><b>". Lengths
 * count UTF-8 bytes, as Lua's `#` does, so connection ids, user ids and room
 * names of any content split back apart on both sides.
 */
export function pack(a: string, b: string): string {
  return `${Buffer.byteLength(a, "utf8")}:${a}${b}`;
}

/** The inverse of {@link pack}. */
export function unpackPair(packed: string): [string, string] {
  const colon = packed.indexOf(":");
  const length = Number(packed.slice(0, colon));
  const rest = Buffer.from(packed.slice(colon + 1), "utf8");
  return [rest.subarray(0, length).toString("utf8"), rest.subarray(length).toString("utf8")];
}

/** A membership field: one connection in one room. */
export const membershipField = (connectionId: string, room: string) => pack(connectionId, room);

/** The connection and room of a membership field. */
export function roomOfMembership(field: string): { connectionId: string; room: string } {
  const [connectionId, room] = unpackPair(field);
  return { connectionId, room };
}

/** A leave a cleanup recorded in its cleaner's outbox: "<id>|" + pack(room or "", user). */
export interface OutboxEntry {
  id: number;
  /** undefined: the user went offline; otherwise the room the user left. */
  room: string | undefined;
  userId: string;
}

export function parseOutboxEntry(entry: string): OutboxEntry {
  const bar = entry.indexOf("|");
  const [room, userId] = unpackPair(entry.slice(bar + 1));
  return { id: Number(entry.slice(0, bar)), room: room === "" ? undefined : room, userId };
}

/** apply.lua's per-operation results. */
export type OperationResult = 1 | 0 | -1;
