import { InvalidConnectionIdError, InvalidRoomError, InvalidUserIdError, InvalidUserInfoError } from "./errors";
import type { UserInfo } from "./store";

/** The default cap on a user id's length, in UTF-8 bytes. */
export const DEFAULT_MAX_USER_ID_BYTES = 256;

/** The default cap on a room name's length, in UTF-8 bytes. */
export const DEFAULT_MAX_ROOM_BYTES = 256;

/** The default cap on a user's info, in UTF-8 bytes of its JSON. */
export const DEFAULT_MAX_USER_INFO_BYTES = 1024;

/**
 * Throws an `InvalidUserIdError` unless `value` is a non-empty, well-formed
 * (no lone surrogates) string of at most `maxBytes` UTF-8 bytes. A user id is
 * data: any other character, `:` `{` `}` and control characters included, is
 * allowed and stored as is.
 */
export function assertUserId(
  value: unknown,
  maxBytes: number = DEFAULT_MAX_USER_ID_BYTES,
): asserts value is string {
  if (typeof value !== "string") {
    throw new InvalidUserIdError(
      "not-a-string",
      `a user id must be a string, got ${value === null ? "null" : typeof value}`,
    );
  }
  if (value.length === 0) {
    throw new InvalidUserIdError("empty", "a user id must not be empty");
  }
  // cheap bounds first: a UTF-16 unit takes 1 to 3 UTF-8 bytes
  if (value.length > maxBytes || (value.length * 3 > maxBytes && Buffer.byteLength(value, "utf8") > maxBytes)) {
    throw new InvalidUserIdError(
      "too-long",
      `a user id must be at most ${maxBytes} UTF-8 bytes`,
    );
  }
  if (!value.isWellFormed()) {
    throw new InvalidUserIdError("malformed", "a user id must be well-formed UTF-16 (no lone surrogates)");
  }
}

/** How many users one `userStates()` call reads at most. */
export const MAX_USER_STATES = 1000;

/** Checks the argument of `userStates()`: an array of at most {@link MAX_USER_STATES} valid user ids. */
export function assertUserIds(
  value: unknown,
  maxBytes: number = DEFAULT_MAX_USER_ID_BYTES,
): asserts value is readonly string[] {
  if (!Array.isArray(value)) throw new InvalidUserIdError("not-a-list", `user ids must be given as an array, got ${value === null ? "null" : typeof value}`);
  if (value.length > MAX_USER_STATES) throw new InvalidUserIdError("too-many", `at most ${MAX_USER_STATES} user ids at once, got ${value.length}`);
  for (const userId of value) assertUserId(userId, maxBytes);
}

/** Whether `value` is a valid user id; see {@link assertUserId}. */
export function isValidUserId(value: unknown, maxBytes?: number): value is string {
  try {
    assertUserId(value, maxBytes);
    return true;
  } catch {
    return false;
  }
}

export function assertConnectionId(value: unknown): asserts value is string {
  if (typeof value !== "string" || value.length === 0) {
    throw new InvalidConnectionIdError("a connection id must be a non-empty string");
  }
}

/** Throws an `InvalidRoomError` unless `value` is a non-empty, well-formed string of at most `maxBytes` UTF-8 bytes. */
export function assertRoom(value: unknown, maxBytes: number = DEFAULT_MAX_ROOM_BYTES): asserts value is string {
  if (typeof value !== "string" || value.length === 0) {
    throw new InvalidRoomError("a room must be a non-empty string");
  }
  if (value.length > maxBytes || (value.length * 3 > maxBytes && Buffer.byteLength(value, "utf8") > maxBytes)) {
    throw new InvalidRoomError(`a room must be at most ${maxBytes} UTF-8 bytes`);
  }
  if (!value.isWellFormed()) throw new InvalidRoomError("a room must be well-formed UTF-16 (no lone surrogates)");
}

/**
 * Validates a user's public info and returns it as JSON: a plain object
 * whose JSON is at most `maxBytes` UTF-8 bytes. Throws `InvalidUserInfoError`.
 */
export function serializeUserInfo(info: unknown, maxBytes: number = DEFAULT_MAX_USER_INFO_BYTES): string {
  if (info === null || typeof info !== "object" || Array.isArray(info) || Object.getPrototypeOf(info) !== Object.prototype) {
    throw new InvalidUserInfoError("user info must be a plain JSON object");
  }
  let json: string;
  try {
    json = JSON.stringify(info);
  } catch (error) {
    throw new InvalidUserInfoError(`user info must be JSON-serializable: ${(error as Error).message}`);
  }
  if (Buffer.byteLength(json, "utf8") > maxBytes) {
    throw new InvalidUserInfoError(`user info must be at most ${maxBytes} bytes of JSON`);
  }
  return json;
}

/** The info as stored: a copy that shares nothing with the caller's object. */
export function parseUserInfo(json: string): UserInfo {
  return JSON.parse(json) as UserInfo;
}
