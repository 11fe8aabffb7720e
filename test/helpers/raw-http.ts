import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
}

/**
 * Sends bytes exactly as given over a TCP connection and reads one response.
 * For requests fetch() would refuse or normalise: invalid bytes, lying sizes, garbage.
 */
export function rawHttp(port: number, request: Buffer | string, opts: { endAfterWrite?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no response'));
    }, opts.timeoutMs ?? 10_000);
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const [head, ...rest] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = rest.join('\r\n\r\n');
      let json: any;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status, headers, body, json });
    });
    socket.write(request, () => {
      if (opts.endAfterWrite !== false) socket.end();
    });
  });
}
