import { PresenceError } from "@presence/core";

/** Some nodes did not answer a cluster query in time. */
export class NodesUnresponsiveError<T = unknown> extends PresenceError {
  /** How many nodes did not answer. */
  readonly missing: number;
  /** How many nodes were asked (this one not included). */
  readonly expected: number;
  /** The answer built from this node and the nodes that did answer. */
  readonly partial: T;

  constructor(missing: number, expected: number, partial: T) {
    super(
      "NODES_UNRESPONSIVE",
      `${missing} of ${expected} other node${expected === 1 ? "" : "s"} did not answer the presence query in time`,
    );
    this.missing = missing;
    this.expected = expected;
    this.partial = partial;
  }
}
