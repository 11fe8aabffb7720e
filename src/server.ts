import { readFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Services, ServiceSettings } from './actions/types.ts';
import type { SecretBox } from './crypto/secret-box.ts';
import { newRequestId } from './crypto/ids.ts';
import type { Clock } from './domain/time.ts';
import { createMetrics } from './metrics.ts';
import { parseTrustedProxies } from './rpc/client-address.ts';
import { type ApiError, errors } from './rpc/errors.ts';
import { DEFAULT_LIMITS, type RpcLimits, createRpcHandler } from './rpc/handle-request.ts';
import { HOST_ID } from './rpc/serialize.ts';
import { FailureThrottle } from './rpc/throttle.ts';
import type { Store } from './store/store.ts';
import { withTimeout } from './util/with-timeout.ts';

export interface ServerOptions {
  store: Store;
  box: SecretBox;
  log: Logger;
  clock: Clock;
  settings: ServiceSettings;
  limits?: Partial<RpcLimits>;
  /** Failed authentications allowed per address within the window before 429. */
  authFailureLimit?: number;
  authFailureWindowMs?: number;
  /** Comma-separated addresses/CIDRs of proxies whose X-Forwarded-For is believed. */
  trustProxy?: string;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  maxConnections?: number;
  maxRequestsPerSocket?: number;
}

const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));
const CONSOLE_TYPES: Record<string, string> = {
  '.html': 'text/html;charset=utf-8',
  '.js': 'text/javascript;charset=utf-8',
  '.css': 'text/css;charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Writes an SMC-style JSON error straight onto a socket the HTTP parser gave up on. */
function rawError(socket: Socket, error: ApiError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ RequestId: newRequestId(), HostId: HOST_ID, Code: error.code, Message: error.message, Recommend: error.recommend });
  socket.end(
    `HTTP/1.1 ${error.status} ${error.code}\r\ncontent-type: application/json;charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

export class SmcdServer {
  readonly http: Server;
  readonly services: Services;
  #purgeTimer?: NodeJS.Timeout;
  #ready = true;

  constructor(readonly options: ServerOptions) {
    const metrics = createMetrics();
    this.services = { store: options.store, box: options.box, clock: options.clock, settings: options.settings, log: options.log, metrics };
    options.store.onBatch = (n) => metrics.batchSize.observe(n);
    const throttle = new FailureThrottle(options.authFailureLimit ?? 100, options.authFailureWindowMs ?? 60_000);
    const rpc = createRpcHandler(
      this.services,
      throttle,
      { ...DEFAULT_LIMITS, ...options.limits },
      options.trustProxy ? parseTrustedProxies(options.trustProxy) : undefined,
    );
    this.http = createServer(
      {
        // Above the URL limit, so that a long URL gets our 414 and not Node's bare 431.
        maxHeaderSize: 64 * 1024,
        headersTimeout: options.headersTimeoutMs ?? 10_000,
        requestTimeout: options.requestTimeoutMs ?? 30_000,
        keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
        connectionsCheckingInterval: 1_000,
      },
      (req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/' || !req.url?.startsWith('/')) return void rpc(req, res);
        return void this.#serveSide(path, req, res);
      },
    );
    this.http.maxConnections = options.maxConnections ?? 10_000;
    this.http.maxRequestsPerSocket = options.maxRequestsPerSocket ?? 10_000;
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const code = err.code ?? '';
      if (code === 'ECONNRESET' || code === 'EPIPE') return socket.destroy();
      if (code === 'HPE_HEADER_OVERFLOW') return rawError(socket, errors.headersTooLarge());
      if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') return rawError(socket, errors.requestTimeout());
      return rawError(socket, errors.badRequest());
    });
  }

  async #serveSide(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { store, metrics } = this.services;
    if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/readyz') {
      try {
        if (!this.#ready) throw new Error('shutting down');
        await withTimeout(store.ping(), 2_000);
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
      } catch {
        return void res.writeHead(503, { 'content-type': 'text/plain' }).end('not ready\n');
      }
    }
    if (path === '/metrics') {
      const text = await metrics.registry.metrics();
      return void res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
    }
    if (path === '/console' || path.startsWith('/console/')) {
      if (path === '/console') return void res.writeHead(301, { location: '/console/' }).end();
      const rel = normalize(decodeURIComponent(path.slice('/console/'.length)) || 'index.html');
      if (rel.startsWith('..') || rel.includes('\0')) return void res.writeHead(404).end();
      try {
        const data = await readFile(join(CONSOLE_DIR, rel));
        return void res
          .writeHead(200, {
            'content-type': CONSOLE_TYPES[extname(rel)] ?? 'application/octet-stream',
            'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
            'x-content-type-options': 'nosniff',
            'referrer-policy': 'no-referrer',
          })
          .end(data);
      } catch {
        return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    }
    const body = JSON.stringify({ RequestId: newRequestId(), HostId: HOST_ID, Code: 'NotFound', Message: 'The specified path does not exist. The API is served at /.', Recommend: '' });
    res.writeHead(404, { 'content-type': 'application/json;charset=utf-8' }).end(body);
  }

  listen(port: number, host: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        const a = this.http.address() as AddressInfo;
        const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        // Nonces and idempotency keys older than their window are forgotten.
        this.#purgeTimer = setInterval(() => {
          this.options.store.purgeExpired(this.options.clock()).catch(() => {});
        }, 60_000).unref();
        resolve(`http://${shown}:${a.port}`);
      });
    });
  }

  /** Stops accepting, lets in-flight requests finish, then closes the store. */
  async close(): Promise<void> {
    this.#ready = false;
    clearInterval(this.#purgeTimer);
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeIdleConnections();
    });
    await this.options.store.close();
  }
}
