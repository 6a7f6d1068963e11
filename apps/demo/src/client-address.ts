import { BlockList, isIP } from "node:net";

/**
 * Which proxies in front of the demo may say who the client is: none (the
 * peer is the client), the nearest `hops` (a count, as Express's `trust
 * proxy`), or those whose address is in `ranges` (IPs and CIDRs).
 */
export type TrustProxy =
  | { kind: "none" }
  | { kind: "hops"; hops: number }
  | { kind: "ranges"; ranges: string[]; list: BlockList };

const OFF = ["", "off", "false", "no", "0"];
const ON = ["on", "true", "yes"];

/** `off`; `on` (one hop); a hop count; or a comma list of IPs and CIDRs (`10.0.0.0/8,::1`). */
export function parseTrustProxy(raw: string | undefined): TrustProxy {
  const value = (raw ?? "").trim().toLowerCase();
  if (OFF.includes(value)) return { kind: "none" };
  if (ON.includes(value)) return { kind: "hops", hops: 1 };
  if (/^\d+$/.test(value)) return { kind: "hops", hops: Number(value) };
  const ranges = value.split(",").map((range) => range.trim());
  const list = new BlockList();
  for (const range of ranges) {
    const [address = "", prefix, extra] = range.split("/");
    const family = isIP(address);
    const bits = Number(prefix);
    if (family === 0 || extra !== undefined || (prefix !== undefined && (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)))) {
      throw new Error(`expected on, off, a hop count, or a comma list of IP addresses and CIDR ranges; ${JSON.stringify(range)} is none of these`);
    }
    const type = family === 4 ? "ipv4" : "ipv6";
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, bits, type);
  }
  return { kind: "ranges", ranges, list };
}

/** The flag's value that parses back to `trust`, for the workers' env. */
export function trustProxyToString(trust: TrustProxy): string {
  switch (trust.kind) {
    case "none":
      return "off";
    case "hops":
      return String(trust.hops);
    case "ranges":
      return trust.ranges.join(",");
  }
}

/**
 * An address as the limits key it: a valid IPv4 or IPv6 address (an
 * IPv4-mapped IPv6 address as plain IPv4, a port dropped), or `undefined`
 * for anything else.
 */
export function normalizeAddress(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let address = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address); // "[::1]:8080"
  if (bracketed) address = bracketed[1]!;
  else if (/^[\d.]+:\d+$/.test(address)) address = address.slice(0, address.lastIndexOf(":")); // "1.2.3.4:8080"
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) address = mapped[1]!;
  return isIP(address) === 0 ? undefined : address.toLowerCase();
}

function trusts(trust: TrustProxy, address: string, hop: number): boolean {
  switch (trust.kind) {
    case "none":
      return false;
    case "hops":
      return hop < trust.hops;
    case "ranges":
      return trust.list.check(address, isIP(address) === 6 ? "ipv6" : "ipv4");
  }
}

/**
 * Who the client is, the same way for HTTP requests and Socket.IO
 * handshakes: starting from the peer, each trusted proxy vouches for the
 * address it appended to `X-Forwarded-For`, so the answer is the right-most
 * address no trusted proxy is behind. Entries to the left of it were written
 * by the client and are never believed; an entry that is not an address
 * ends the walk at the last address a trusted proxy vouched for.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trust: TrustProxy): string {
  let client = normalizeAddress(peer) ?? "unknown";
  if (trust.kind === "none" || forwardedFor === undefined) return client;
  // nearest first: each proxy appends the address the request came to it from
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor).split(",").reverse();
  for (let hop = 0; hop < hops.length && trusts(trust, client, hop); hop++) {
    const next = normalizeAddress(hops[hop]);
    if (next === undefined) break;
    client = next;
  }
  return client;
}
