import { parseUserInfo, type Transition } from "@presence/core";
import type { Operation, OperationKind, OperationOutcome } from "./operations";

/**
 * The script boundary, in TypeScript: how operations, results, outbox
 * entries, known fields and fences look to the Lua scripts. Each encoding
 * is written once here and once in Lua (src/scripts/includes/).
 */

/**
 * Two strings in one as "<byte length of a>:<a><b>" (includes/pack.lua).
 * Lengths count UTF-8 bytes, as Lua's `#` does, so connection ids, user ids
 * and room names of any content split back apart on both sides.
 */
export function pack(a: string, b: string): string {
  return `${Buffer.byteLength(a, "utf8")}:${a}${b}`;
}

/** The inverse of {@link pack}. */
export function unpackPair(packed: string): [string, string] {
  const colon = packed.indexOf(":");
  const length = Number(packed.slice(0, colon));
  if (colon < 1 || !Number.isSafeInteger(length)) throw new Error(`not a packed pair: ${JSON.stringify(packed.slice(0, 32))}`);
  const rest = Buffer.from(packed.slice(colon + 1), "utf8");
  return [rest.subarray(0, length).toString("utf8"), rest.subarray(length).toString("utf8")];
}

/** A membership field: one connection in one room (in Redis, apply.lua packs the connection's slot). */
export const membershipField = (connectionId: string, room: string) => pack(connectionId, room);

/** The room of a membership field in Redis. */
export function roomOfMembership(field: string): string {
  return unpackPair(field)[1];
}

/** The letter apply.lua knows each operation by. */
export const OPERATION_LETTERS: Readonly<Record<OperationKind, string>> = {
  connect: "c",
  republish: "r",
  disconnect: "d",
  join: "j",
  leave: "l",
  update: "u",
};

/**
 * apply.lua's five arguments for one operation; `roomKeyIndex` gives the
 * KEYS index of a room's key (join and leave). The connection id comes
 * first, for whoever reads the command: Redis names connections by slot.
 */
export function operationArguments(operation: Operation, roomKeyIndex: (room: string) => number): [string, string, string, string, string] {
  const letter = OPERATION_LETTERS[operation.kind];
  switch (operation.kind) {
    case "connect":
    case "republish":
      return [letter, operation.connectionId, String(operation.slot), operation.userId, operation.info];
    case "disconnect":
      return [letter, operation.connectionId, String(operation.slot), operation.userId, ""];
    case "update":
      return [letter, "", operation.userId, operation.info, ""];
    case "join":
    case "leave":
      return [letter, operation.connectionId, String(operation.slot), operation.room, String(roomKeyIndex(operation.room))];
  }
}

/** One of apply.lua's results: 0, -1, a version, or `[version, info JSON]` for a join that was a transition. */
export function decodeOutcome(raw: unknown): OperationOutcome {
  if (Array.isArray(raw)) {
    const [version, info] = raw as unknown[];
    const outcome = decodeOutcome(version);
    if (outcome.type !== "transition" || (info !== undefined && info !== null && typeof info !== "string")) throw new Error(`malformed apply result: ${JSON.stringify(raw)}`);
    return typeof info === "string" ? { ...outcome, info } : outcome;
  }
  const value = typeof raw === "string" ? Number(raw) : raw;
  if (value === 0) return { type: "unchanged" };
  if (value === -1) return { type: "conflict" };
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return { type: "transition", version: value };
  throw new Error(`malformed apply result: ${JSON.stringify(raw)}`);
}

/**
 * A transition in a cleaner's outbox (includes/outbox.lua): a leave its
 * cleanup decided, or one of a dead process's last batch it took from that
 * process's record (includes/record.lua). "<id>|<version>|" + a payload:
 * pack(room or "", user) for a room left or a user gone offline; "c" +
 * pack(user, info) online, "u" + pack(user, info) updated, "j" + pack(room,
 * pack(user, info)) entered a room (info "" for none).
 */
export interface OutboxEntry {
  id: number;
  /** One transition, or for a run of users gone offline, one per user, in version order. */
  transitions: Transition[];
}

export function parseOutboxEntry(entry: string): OutboxEntry {
  const match = /^(\d+)\|(\d+)\|([cujo]?)/.exec(entry);
  if (!match) throw new Error(`malformed outbox entry: ${JSON.stringify(entry.slice(0, 64))}`);
  const [id, version] = [Number(match[1]), Number(match[2])];
  const rest = entry.slice(match[0].length);
  if (match[3] === "o") return { id, transitions: offlineRun(rest, version) };
  const [a, b] = unpackPair(rest);
  const withInfo = <T extends Transition>(transition: T, info: string): T => (info === "" ? transition : { ...transition, info: parseUserInfo(info) });
  switch (match[3]) {
    case "c":
      return { id, transitions: [withInfo({ type: "connected", userId: a, version }, b)] };
    case "u":
      return { id, transitions: [{ type: "updated", userId: a, info: parseUserInfo(b), version }] };
    case "j": {
      const [userId, info] = unpackPair(b);
      return { id, transitions: [withInfo({ type: "joined", room: a, userId, version }, info)] };
    }
    default:
      return { id, transitions: [a === "" ? { type: "disconnected", userId: b, version } : { type: "left", room: a, userId: b, version }] };
  }
}

/** The users of a run (includes/outbox.lua's outbox_push_leaves): pack(user, "") each, versions from `first` on. */
function offlineRun(run: string, first: number): Transition[] {
  const transitions: Transition[] = [];
  const bytes = Buffer.from(run, "utf8");
  for (let at = 0; at < bytes.length; ) {
    const colon = bytes.indexOf(0x3a, at);
    const length = Number(bytes.toString("latin1", at, colon));
    if (colon < 0 || !Number.isSafeInteger(length) || colon + 1 + length > bytes.length) throw new Error(`malformed run of leaves at byte ${at}`);
    transitions.push({ type: "disconnected", userId: bytes.toString("utf8", colon + 1, colon + 1 + length), version: first + transitions.length });
    at = colon + 1 + length;
  }
  return transitions;
}

/**
 * A field of the known hash (after a data loss): a user announced online
 * (`u:` + user id) or a user announced in a room (`r:` + pack(room, user)).
 * The prefixes keep a user id from ever reading as a room member.
 */
export type Known = { userId: string; room?: string };

export function knownField({ userId, room }: Known): string {
  return room === undefined ? `u:${userId}` : `r:${pack(room, userId)}`;
}

export function parseKnownField(field: string): Known {
  if (field.startsWith("u:")) return { userId: field.slice(2) };
  if (field.startsWith("r:")) {
    const [room, userId] = unpackPair(field.slice(2));
    return { userId, room };
  }
  throw new Error(`malformed known field: ${JSON.stringify(field.slice(0, 64))}`);
}

/** Why Redis refused a process (its write, renewal or cleanup). */
export enum FenceReason {
  /** Not registered: declared dead and cleaned up, or Redis lost its data. */
  Gone = "gone",
  /** Redis's record of it is older than what it saw applied: a restore from an older snapshot, a lagging replica. */
  Behind = "behind",
}

/** The codes of includes/fences.lua. */
const FENCE_CODES: ReadonlyMap<number, FenceReason> = new Map([
  [-1, FenceReason.Gone],
  [-2, FenceReason.Behind],
]);

/**
 * The one mapping of a script's reply to a fence: a fence code (an integer
 * reply where a script answers with an array otherwise) gives its reason,
 * anything else `undefined`.
 */
export function fenceOf(reply: unknown): FenceReason | undefined {
  if (typeof reply !== "number") return undefined;
  const reason = FENCE_CODES.get(reply);
  if (reason === undefined) throw new Error(`unknown fence code from a presence script: ${reply}`);
  return reason;
}
