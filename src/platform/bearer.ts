const encoder = new TextEncoder();

/** Compares two secrets in constant time: both are hashed first so lengths never leak. */
export async function secretsEqual(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/** True when the request carries `Authorization: Bearer <secret>` (compared in constant time). */
export async function bearerIs(request: Request, secret: string | undefined): Promise<boolean> {
  if (!secret) return false;
  const token = /^Bearer\s+(.+)$/i.exec(request.headers.get("authorization") ?? "")?.[1]?.trim();
  return token !== undefined && (await secretsEqual(token, secret));
}
