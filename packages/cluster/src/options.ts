import { InvalidOptionError, type PresenceLimits } from "@presence/core";

export { assertKnownOptions } from "@presence/core";

/** The longest a Node timer waits: a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Checks a duration in ms (more than 0, or 0 too with `zero`, and at most what a timer can wait), or gives the default when not given. */
export function durationOption(owner: string, name: string, value: unknown, fallback: number, zero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || (zero ? value < 0 : value <= 0) || value > MAX_TIMER_MS) {
    const range = zero ? "0 or more" : "more than 0";
    throw new InvalidOptionError(owner, name, `must be a number of ms, ${range} and at most 2^31 - 1, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

/** Only the limits that were given, so that defaults (or the primary's limits) fill in the rest. */
export function definedLimits({ maxUserIdBytes, maxRoomBytes, maxUserInfoBytes }: Partial<PresenceLimits>): Partial<PresenceLimits> {
  const limits: Partial<PresenceLimits> = {};
  if (maxUserIdBytes !== undefined) limits.maxUserIdBytes = maxUserIdBytes;
  if (maxRoomBytes !== undefined) limits.maxRoomBytes = maxRoomBytes;
  if (maxUserInfoBytes !== undefined) limits.maxUserInfoBytes = maxUserInfoBytes;
  return limits;
}

/** Checks limits given as options, naming the option and its owner (core's `resolveLimits` would say "presence limits"). */
export function limitOptions(owner: string, options: Partial<PresenceLimits>): Partial<PresenceLimits> {
  const limits = definedLimits(options);
  for (const [name, value] of Object.entries(limits)) {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new InvalidOptionError(owner, name, `must be a positive integer (bytes), got ${JSON.stringify(value) ?? String(value)}`);
    }
  }
  return limits;
}
