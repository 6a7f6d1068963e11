import { SignJWT, jwtVerify } from "jose";

/** What a demo token says: the user (`sub`) and what they show others. */
export interface TokenClaims {
  sub: string;
  info?: { [key: string]: unknown };
}

/**
 * Demo tokens are standard JWTs (HS256, with an expiry), so an app can swap
 * in its identity provider's tokens and keep the socket contract
 * (`auth: { token }`): only `verify` changes (RS256 and a JWKS, say).
 */
export class TokenSigner {
  readonly #key: Uint8Array;

  constructor(
    secret: string,
    /** How long a token lives (`"24h"`), or when it expires (seconds since the epoch). */
    readonly ttl: string | number = "24h",
    /** Leeway for clocks of different hosts, in seconds. */
    readonly clockToleranceSeconds = 30,
  ) {
    this.#key = new TextEncoder().encode(secret);
  }

  sign(userId: string, info?: TokenClaims["info"]): Promise<string> {
    return new SignJWT(info === undefined ? {} : { info })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(this.ttl)
      .sign(this.#key);
  }

  /** The claims of a valid token signed with this secret, with an expiry not past; `undefined` for anything else. */
  async verify(token: unknown): Promise<TokenClaims | undefined> {
    if (typeof token !== "string" || token.length > 8192) return undefined;
    try {
      // a token without an expiry would be good forever: refused
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: ["HS256"],
        clockTolerance: this.clockToleranceSeconds,
        requiredClaims: ["exp", "sub"],
      });
      if (typeof payload.sub !== "string") return undefined;
      const info = payload.info;
      return info !== null && typeof info === "object" && !Array.isArray(info)
        ? { sub: payload.sub, info: info as TokenClaims["info"] }
        : { sub: payload.sub };
    } catch {
      return undefined;
    }
  }
}
