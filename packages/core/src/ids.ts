import { InvalidConnectionIdError, InvalidUserIdError } from "./errors";

/** The default cap on a user id's length, in UTF-8 bytes. */
export const DEFAULT_MAX_USER_ID_BYTES = 256;

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
