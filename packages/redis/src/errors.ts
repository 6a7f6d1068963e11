import { InvalidOptionError as CoreInvalidOptionError, PresenceError } from "@presence/core";

/** An option given to `RedisStore` is missing, of the wrong type or out of range; `option` names it (core's `InvalidOptionError`). */
export class InvalidOptionError extends CoreInvalidOptionError {
  constructor(option: string, message: string) {
    super("RedisStore", option, message);
  }
}

/**
 * Redis refused a write or a renewal because this process is no longer
 * registered under its process id (its lease expired and it was cleaned up,
 * or Redis lost or rolled back its data): nothing of the call was applied.
 */
export class FencedError extends PresenceError {
  readonly processId: string;
  /** `gone`: the process is not registered; `behind`: Redis's record of it is older than what it acknowledged (data went back in time). */
  readonly reason: "gone" | "behind";

  constructor(processId: string, reason: "gone" | "behind") {
    super("FENCED", `process ${processId} was fenced (${reason === "gone" ? "not registered" : "Redis's record of it went back in time"})`);
    this.processId = processId;
    this.reason = reason;
  }
}
