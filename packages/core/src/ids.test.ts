import { describe, expect, it } from "vitest";
import { InvalidUserIdError } from "./errors";
import { assertUserId, isValidUserId } from "./ids";

describe("assertUserId", () => {
  it.each([
    ["not-a-string", 42],
    ["not-a-string", null],
    ["empty", ""],
    ["too-long", "x".repeat(257)],
    ["too-long", "é".repeat(129)], // 258 bytes in 129 UTF-16 units
    ["malformed", "a\udc00b"],
  ])("refuses (%s) %j", (reason, value) => {
    try {
      assertUserId(value);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidUserIdError);
      expect((error as InvalidUserIdError).reason).toBe(reason);
      expect((error as InvalidUserIdError).code).toBe("INVALID_USER_ID");
    }
  });

  it("accepts ids up to the byte limit, any characters", () => {
    expect(isValidUserId("x".repeat(256))).toBe(true);
    expect(isValidUserId("é".repeat(128))).toBe(true);
    expect(isValidUserId("{a}:b\n\u0000")).toBe(true);
    expect(isValidUserId("abcd", 3)).toBe(false);
  });
});
