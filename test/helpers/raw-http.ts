import { connect } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
}

function parse(buf: Buffer, head = false): RawResponse | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  const length = head ? 0 : Number(headers['content-length'] ?? Number.NaN);
  const bodyBytes = buf.subarray(end + 4);
  if (Number.isFinite(length) && bodyBytes.length < length) return undefined;
  const body = bodyBytes.subarray(0, Number.isFinite(length) ? length : undefined).toString('utf8');
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(lines[0]?.split(' ')[1]), headers, body, json };
}

/**
 * Sends bytes exactly as given over a TCP connection and reads one response
 * (by Content-Length, or until the server closes). For requests fetch() would
 * refuse or normalise: invalid bytes, lying sizes, garbage. The client side is
 * not half-closed: Node's server drops a request whose client sent FIN.
 */
/** `head`: the answer to a HEAD request, which has headers only, whatever Content-Length says. */
export function rawHttp(port: number, request: Buffer | string, opts: { timeoutMs?: number; head?: boolean } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (r: RawResponse | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (r) resolve(r);
      else reject(new Error(`no complete response: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`));
    };
    const timer = setTimeout(() => finish(undefined), opts.timeoutMs ?? 15_000);
    socket.on('data', (c) => {
      buf = Buffer.concat([buf, c]);
      const r = parse(buf, opts.head);
      if (r && (opts.head || r.headers['content-length'] !== undefined)) finish(r);
    });
    socket.on('error', () => {});
    socket.on('close', () =>
      finish(parse(buf, opts.head) ?? (buf.length ? { status: Number.NaN, headers: {}, body: buf.toString('utf8'), json: undefined } : undefined)),
    );
    socket.write(request);
  });
}
