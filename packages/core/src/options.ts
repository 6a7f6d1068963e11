import { InvalidOptionError } from "./errors";

/** The edit distance between two names, for "did you mean ...?". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The known name closest to `name`, when one is close enough to be what was meant. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/**
 * Throws `InvalidOptionError` for an options argument that is not an object,
 * or for a key no option has, suggesting the closest name (a JavaScript
 * caller's typo, `leaveDelay` for `leaveDelayMs`, would otherwise pass silently).
 */
export function assertKnownOptions(owner: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidOptionError(owner, "options", `must be an object, got ${options === null ? "null" : typeof options}`);
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const suggestion = closestName(key, known);
    throw new InvalidOptionError(owner, key, `is not an option${suggestion ? `: did you mean \`${suggestion}\`?` : ` (known: ${known.join(", ")})`}`);
  }
}

/** Checks a numeric option: an integer at least `min`, or the default when not given. */
export function integerOption(owner: string, name: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(owner, name, `must be an integer of at least ${min}, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

/** Checks that a value has every method of a contract, naming what is missing. */
export function assertImplements(owner: string, name: string, value: unknown, methods: readonly string[], what: string): void {
  const missing =
    typeof value !== "object" || value === null ? methods : methods.filter((method) => typeof (value as Record<string, unknown>)[method] !== "function");
  if (missing.length > 0) {
    throw new InvalidOptionError(owner, name, `must be ${what} (missing ${missing.map((m) => `${m}()`).join(", ")})`);
  }
}

/** The methods of `PresenceStore`, for `assertImplements`. */
export const PRESENCE_STORE_METHODS = [
  "connect",
  "disconnect",
  "updateInfo",
  "userInfo",
  "join",
  "leave",
  "isUserInRoom",
  "roomUsersCount",
  "roomUsers",
  "isUserConnected",
  "usersCount",
  "usersList",
  "users",
  "userStates",
  "onTransition",
  "onError",
  "close",
] as const;
