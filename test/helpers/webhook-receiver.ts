import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  signature: string;
  body: string;
  event: { EventId: string; EventType: string; EventTime: string; ResourceType: string; ResourceId: string; Detail: string };
  /** What the receiver answered (0: it never answered). */
  answered: number;
}

/**
 * An HTTP receiver on 127.0.0.1 that records every delivery and answers with what `answer`
 * says for it: a status, or 0 to never answer (the sender's timeout then ends the attempt).
 */
export async function startReceiver(answer: (path: string, received: Received[]) => number) {
  const received: Received[] = [];
  const hanging = new Set<import('node:http').ServerResponse>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const status = answer(path, received);
      received.push({ path, signature: String(req.headers['smcd-signature'] ?? ''), body, event: JSON.parse(body), answered: status });
      if (status === 0) {
        hanging.add(res);
        return;
      }
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Checks `Smcd-Signature: t=<s>,v1=<hex HMAC-SHA256(secret, t + "." + body)>` as a receiver would; returns t. */
export function verifySignature(header: string, body: string, secret: string): number | undefined {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return undefined;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest('hex');
  return expected === m[2] ? Number(m[1]) : undefined;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
