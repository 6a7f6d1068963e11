import { describe, expect, it } from "vitest";
import { clientAddress, normalizeAddress, parseTrustProxy, trustProxyToString } from "../src/client-address";

describe("--trust-proxy", () => {
  it("parses off, on (one hop), a hop count, and address ranges", () => {
    for (const off of [undefined, "", "off", "false", "no", "0"]) expect(parseTrustProxy(off)).toEqual({ kind: "none" });
    for (const on of ["on", "true", "yes", "1"]) expect(parseTrustProxy(on)).toEqual({ kind: "hops", hops: 1 });
    expect(parseTrustProxy("2")).toEqual({ kind: "hops", hops: 2 });
    expect(parseTrustProxy("10.0.0.0/8, 127.0.0.1,::1,fd00::/8")).toMatchObject({ kind: "ranges", ranges: ["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"] });
    for (const bad of ["maybe", "10.0.0.0/33", "10.0.0.0/8/1", "10.0.0.0/x", "localhost", "1.2.3", "::1/129", "10.0.0.1,"]) {
      expect(() => parseTrustProxy(bad), bad).toThrow(/comma list of IP addresses and CIDR ranges/);
    }
  });

  it("prints a value that parses back to the same trust, for the workers' env", () => {
    for (const raw of ["off", "on", "3", "10.0.0.0/8,::1"]) {
      const trust = parseTrustProxy(raw);
      expect(parseTrustProxy(trustProxyToString(trust))).toEqual(trust);
    }
  });
});

describe("the client's address", () => {
  const none = parseTrustProxy("off");
  const oneHop = parseTrustProxy("on");
  const twoHops = parseTrustProxy("2");
  const ranges = parseTrustProxy("127.0.0.1,10.0.0.0/8");

  it("is the peer when no proxy is trusted, whatever X-Forwarded-For says", () => {
    expect(clientAddress("127.0.0.1", "203.0.113.7", none)).toBe("127.0.0.1");
    expect(clientAddress("::ffff:127.0.0.1", undefined, oneHop)).toBe("127.0.0.1");
    expect(clientAddress(undefined, undefined, none)).toBe("unknown");
  });

  it("is the right-most hop no trusted proxy is behind: by hop count", () => {
    // the client may write anything on the left; the proxy appends the address it saw
    expect(clientAddress("127.0.0.1", "198.51.100.1, 203.0.113.7", oneHop)).toBe("203.0.113.7");
    expect(clientAddress("127.0.0.1", "spoofed, 203.0.113.7", oneHop)).toBe("203.0.113.7");
    expect(clientAddress("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.0.2", twoHops)).toBe("203.0.113.7");
    // fewer hops than trusted: the left-most is as far as the chain goes
    expect(clientAddress("127.0.0.1", "203.0.113.7", twoHops)).toBe("203.0.113.7");
    expect(clientAddress("127.0.0.1", ["198.51.100.1", "203.0.113.7"], oneHop)).toBe("203.0.113.7");
  });

  it("is the right-most hop no trusted proxy is behind: by address range", () => {
    expect(clientAddress("127.0.0.1", "198.51.100.1, 203.0.113.9, 10.1.2.3", ranges)).toBe("203.0.113.9");
    expect(clientAddress("127.0.0.1", "203.0.113.9, 10.1.2.3, 10.9.9.9", ranges)).toBe("203.0.113.9");
    // a peer outside the ranges is the client itself: its header is not believed
    expect(clientAddress("192.0.2.1", "203.0.113.9", ranges)).toBe("192.0.2.1");
    // every hop trusted: the left-most
    expect(clientAddress("127.0.0.1", "10.0.0.5", ranges)).toBe("10.0.0.5");
  });

  it("drops what is not an address: the walk stops at the last address a trusted proxy vouched for", () => {
    expect(clientAddress("127.0.0.1", "not-an-ip", oneHop)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", "203.0.113.7, 999.1.1.1", twoHops)).toBe("127.0.0.1");
    expect(clientAddress("127.0.0.1", "<script>, 203.0.113.7", twoHops)).toBe("203.0.113.7");
    expect(clientAddress("127.0.0.1", "", oneHop)).toBe("127.0.0.1");
  });

  it("normalizes addresses: IPv4-mapped IPv6, ports, brackets, case", () => {
    expect(normalizeAddress("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(normalizeAddress("203.0.113.7:4711")).toBe("203.0.113.7");
    expect(normalizeAddress("[2001:DB8::1]:443")).toBe("2001:db8::1");
    expect(normalizeAddress(" 2001:db8::1 ")).toBe("2001:db8::1");
    for (const garbage of ["", "unknown", "1.2.3.4.5", "[::1", "example.com", "1.2.3.4:x"]) expect(normalizeAddress(garbage), garbage).toBeUndefined();
  });
});
