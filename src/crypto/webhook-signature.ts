import { createHmac } from 'node:crypto';

/**
 * The `Smcd-Signature` header of a webhook delivery: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
 * t + "." + body)>` (API.md 5.6). Signing the time lets a receiver refuse old replays.
 */
export function webhookSignature(secret: string, unixSeconds: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}
