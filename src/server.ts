import { createServer, type ServerOptions as HttpServerOptions, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, BlockList, Socket } from 'node:net';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ServiceSettings, Services } from './actions/define.ts';
import { HeartbeatBuffer } from './actions/heartbeat-buffer.ts';
import { bindActions } from './actions/index.ts';
import { expiringEvent, offlineEvent, onlineEvent } from './actions/liveness-events.ts';
import { newRequestId } from './crypto/ids.ts';
import type { SecretBox } from './crypto/secret-box.ts';
import type { TokenStatus } from './domain/access-token.ts';
import { DEFAULT_AUDIT_RETENTION_DAYS } from './domain/audit-event.ts';
import { addressGroup, normaliseClientIp } from './domain/ip-range.ts';
import { onlineSince, type SourceState } from './domain/source-server.ts';
import { type Clock, DAY_MS } from './domain/time.ts';
import { backoffFrom } from './domain/webhook.ts';
import { createMetrics, type StateCounts, storeKind } from './metrics.ts';
import { parseTrustedProxies } from './rpc/client-address.ts';
import { CredentialResolver } from './rpc/credentials.ts';
import { type ApiError, errors } from './rpc/errors.ts';
import { createRpcHandler, DEFAULT_LIMITS, type RpcLimits } from './rpc/handle-request.ts';
import { HOST_ID } from './rpc/serialize.ts';
import { AuthThrottle } from './rpc/throttle.ts';
import { decodePathSegment, loadStaticFiles, type StaticFile } from './static-files.ts';
import type { Store } from './store/store.ts';
import type { TlsPair } from './tls-files.ts';
import { withTimeout } from './util/with-timeout.ts';
import { packageVersion } from './version.ts';
import { WebhookDispatcher } from './webhooks/dispatcher.ts';

/** Sources marked offline (and their events written) per transaction of the sweep. */
const OFFLINE_BATCH = 500;
export interface ServerOptions {
  store: Store;
  box: SecretBox;
  log: Logger;
  clock: Clock;
  settings: ServiceSettings;
  limits?: Partial<RpcLimits>;
  /** Failed authentications allowed per address (IPv6: per /64) within the window before 429. */
  authFailureLimit?: number;
  authFailureWindowMs?: number;
  /** Failed signatures allowed per AccessKeyId within the window before 429 for that key id. */
  keyFailureLimit?: number;
  /** Comma-separated addresses/CIDRs of proxies whose X-Forwarded-For is believed. */
  trustProxy?: string;
  /** The URL sources reach this server at (agent script, import command); default the listen address. */
  publicUrl?: string;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  maxConnections?: number;
  /** Open connections one client address (IPv6: one /64) may hold; trusted proxies are exempt. */
  maxConnectionsPerAddress?: number;
  maxRequestsPerSocket?: number;
  /** Where the console's files are read from at start (tests); default the shipped console/. */
  consoleDir?: string;
  /** Serve HTTPS with this certificate and key instead of HTTP. */
  tls?: TlsPair;
  /**
   * What /metrics answers, given this server's own registry; default that registry. A
   * `--workers` worker answers with the sum over every worker (src/cli/cluster.ts).
   */
  metricsFrom?: (own: Registry) => () => Promise<string>;
  /** Days audit events and webhook deliveries are kept (default 365). */
  auditRetentionDays?: number;
  /** How often sources are checked for Offline and codes for ExpiringSoon; default the heartbeat rate, within 1-60 s. */
  sweepIntervalMs?: number;
  /** Webhook delivery timing: the first retry's delay (10 s; tests shrink it), the store poll, the attempt timeout. */
  webhooks?: { backoffMs?: number; pollMs?: number; timeoutMs?: number };
}

const CONSOLE_DIR = fileURLToPath(new URL('../console/', import.meta.url));
const AGENT_DIR = fileURLToPath(new URL('../agent/', import.meta.url));
/** The line of the shell agent that the server fills in with its public URL. */
const PUBLIC_URL_PLACEHOLDER = '__SMCD_PUBLIC_URL__';

const CONSOLE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
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

function plain(res: ServerResponse, status: number, text: string, requestId?: string): void {
  const headers: Record<string, string> = { 'content-type': 'text/plain;charset=utf-8' };
  if (requestId) headers['x-acs-request-id'] = requestId;
  res.writeHead(status, headers).end(`${text}${requestId ? ` (RequestId ${requestId})` : ''}\n`);
}

/** `http(s)://host[:port]` without a trailing slash, query, fragment or credentials; else an error message. */
export function checkPublicUrl(raw: string): { url: string } | { error: string } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { error: `"${raw}" is not a URL` };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { error: 'must start with http:// or https://' };
  if (u.username || u.password || u.search || u.hash) return { error: 'must not carry credentials, a query or a fragment' };
  // It is written into a shell script and shell commands: only URL characters, never a quote.
  const url = u.href.replace(/\/+$/, '');
  if (!/^[A-Za-z0-9:/.\-_~%[\]@!$&()*+,;=]+$/.test(url) || url.includes("'")) return { error: 'contains characters a URL should not' };
  return { url };
}

/** The counts of the state gauges, through the store's indexed counts (its filtered lists with one row). */
async function countState(store: Store, now: number, heartbeatRateSeconds: number): Promise<StateCounts> {
  const one = { offset: 0, limit: 1 };
  const codes = (status: TokenStatus) => store.listAccessTokens({ status, now, ...one }).then((r) => r.total);
  const sources = (state: SourceState) =>
    store.describeSources({ state, onlineSince: onlineSince(now, heartbeatRateSeconds), ...one }).then((r) => r.total);
  const [activated, unactivated, expired, available, unavailable] = await Promise.all([
    codes('activated'),
    codes('unactivated'),
    codes('expired'),
    sources('Available'),
    sources('Unavailable'),
  ]);
  return { codes: { activated, unactivated, expired }, sources: { Available: available, Unavailable: unavailable } };
}

export class SmcdServer {
  /** The HTTP server, or the HTTPS one when a certificate was given (an https.Server is an http.Server too). */
  readonly http: Server | HttpsServer;
  readonly services: Services;
  readonly #console: ReadonlyMap<string, StaticFile>;
  readonly #agentScript?: StaticFile;
  #agentScriptFilled?: StaticFile;
  #address?: string;
  #purgeTimer?: NodeJS.Timeout;
  #sweepTimer?: NodeJS.Timeout;
  #sweeping?: Promise<void>;
  readonly #dispatcher: WebhookDispatcher;
  #ready = true;
  readonly #metricsText: () => Promise<string>;

  constructor(readonly options: ServerOptions) {
    const metrics = createMetrics({ version: packageVersion(), node: process.version, store: storeKind(options.store.description) }, () =>
      countState(options.store, options.clock(), options.settings.heartbeatRateSeconds),
    );
    this.#metricsText = options.metricsFrom?.(metrics.registry) ?? (() => metrics.registry.metrics());
    // Flushed several times per heartbeat period: the stored time lags by at most a third of it.
    const flushMs = Math.min(2_000, Math.max(100, (options.settings.heartbeatRateSeconds * 1000) / 3));
    const heartbeats = new HeartbeatBuffer(options.store, options.log, flushMs, onlineEvent);
    const backoffMs = options.webhooks?.backoffMs ?? 10_000;
    this.#dispatcher = new WebhookDispatcher({
      store: options.store,
      box: options.box,
      log: options.log,
      clock: options.clock,
      backoff: backoffFrom(backoffMs),
      pollMs: options.webhooks?.pollMs ?? Math.max(50, Math.min(1_000, backoffMs / 2)),
      timeoutMs: options.webhooks?.timeoutMs ?? 10_000,
      leaseMs: 6 * (options.webhooks?.timeoutMs ?? 10_000),
    });
    this.services = {
      store: options.store,
      box: options.box,
      clock: options.clock,
      settings: options.settings,
      log: options.log,
      metrics,
      heartbeats,
    };
    options.store.observe({ groupCommit: (n) => metrics.batchSize.observe(n) });
    const throttle = new AuthThrottle({
      addressLimit: options.authFailureLimit ?? 100,
      keyLimit: options.keyFailureLimit ?? 1000,
      windowMs: options.authFailureWindowMs ?? 60_000,
    });
    const trusted = options.trustProxy ? parseTrustedProxies(options.trustProxy) : undefined;
    const rpc = createRpcHandler({
      actions: bindActions(this.services),
      credentials: new CredentialResolver(options.store, options.box),
      store: options.store,
      throttle,
      clock: options.clock,
      log: options.log,
      metrics,
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      trustedProxies: trusted,
    });
    this.#console = loadStaticFiles(options.consoleDir ?? CONSOLE_DIR);
    this.#agentScript = loadStaticFiles(AGENT_DIR).get('smcd-agent.sh');
    const httpOptions: HttpServerOptions = {
      // Above the URL limit, so that a long URL gets our 414 and not Node's bare 431.
      maxHeaderSize: 64 * 1024,
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
      connectionsCheckingInterval: 1_000,
    };
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      // Whatever a handler throws is answered and logged here: no request ends the process.
      const url = req.url ?? '/';
      const routed = url === '/' || url.startsWith('/?') || !url.startsWith('/') ? rpc(req, res) : this.#serveSide(url, req, res);
      routed.catch((err: unknown) => this.#failed(url, res, err));
    };
    this.http = options.tls
      ? createHttpsServer(
          // Node's default handshake timeout is 120 s: a client that never finishes one is held no longer than a slow header.
          { ...httpOptions, cert: options.tls.cert, key: options.tls.key, handshakeTimeout: httpOptions.headersTimeout },
          handler,
        )
      : createServer(httpOptions, handler);
    this.http.maxConnections = options.maxConnections ?? 10_000;
    this.http.maxRequestsPerSocket = options.maxRequestsPerSocket ?? 10_000;
    this.#capConnectionsPerAddress(options.maxConnectionsPerAddress ?? 256, trusted);
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const code = err.code ?? '';
      if (code === 'ECONNRESET' || code === 'EPIPE') return socket.destroy();
      if (code === 'HPE_HEADER_OVERFLOW') return rawError(socket, errors.headersTooLarge());
      if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'ERR_HTTP_HEADERS_TIMEOUT') return rawError(socket, errors.requestTimeout());
      return rawError(socket, errors.badRequest());
    });
  }

  /**
   * Replaces the certificate and key for new connections; open ones keep theirs.
   * The pair must have been checked (readTlsPair). False when this server serves plain HTTP.
   */
  setTls(pair: TlsPair): boolean {
    if (!('setSecureContext' in this.http)) return false;
    this.http.setSecureContext({ cert: pair.cert, key: pair.key });
    return true;
  }

  /** Connections beyond `cap` from one address (IPv6: one /64) are closed at once. */
  #capConnectionsPerAddress(cap: number, trusted: BlockList | undefined): void {
    const open = new Map<string, number>();
    const refused = this.services.metrics.connectionsRefused;
    // For HTTPS too 'connection' is the TCP socket, before the handshake: an over-cap one costs none.
    this.http.on('connection', (socket: Socket) => {
      const peer = normaliseClientIp(socket.remoteAddress ?? '');
      const version = isIP(peer);
      // A proxy carries many clients on its connections; its own limits apply to them.
      if (trusted && version !== 0 && trusted.check(peer, version === 4 ? 'ipv4' : 'ipv6')) return;
      const group = addressGroup(peer);
      const n = (open.get(group) ?? 0) + 1;
      if (n > cap) {
        refused.inc();
        socket.destroy();
        return;
      }
      open.set(group, n);
      socket.once('close', () => {
        const left = (open.get(group) ?? 1) - 1;
        if (left > 0) open.set(group, left);
        else open.delete(group);
      });
    });
  }

  /** An exception no handler answered: 500, logged with a RequestId; the process goes on. */
  #failed(url: string, res: ServerResponse, err: unknown): void {
    const requestId = newRequestId();
    this.services.log.error({ requestId, path: url.split('?')[0]?.slice(0, 256), err }, 'internal error');
    this.services.metrics.internalErrors.inc();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (url === '/' || url.startsWith('/?')) {
      const e = errors.internal();
      const body = JSON.stringify({ RequestId: requestId, HostId: HOST_ID, Code: e.code, Message: e.message, Recommend: e.recommend });
      res.writeHead(500, { 'content-type': 'application/json;charset=utf-8', 'x-acs-request-id': requestId }).end(body);
      return;
    }
    plain(res, 500, 'internal error', requestId);
  }

  async #serveSide(url: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = url.split('?')[0] ?? '';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return plain(res, 405, 'method not allowed: use GET', newRequestId());
    }
    if (path === '/healthz') return plain(res, 200, 'ok');
    if (path === '/readyz') return this.#readiness(res);
    if (path === '/metrics') {
      const { registry } = this.services.metrics;
      const text = await this.#metricsText();
      return void res.writeHead(200, { 'content-type': registry.contentType }).end(text);
    }
    if (path === '/console') return void res.writeHead(301, { location: '/console/' }).end();
    if (path.startsWith('/console/')) return this.#serveConsole(path.slice('/console/'.length), res);
    if (path === '/agent/smcd-agent.sh') return this.#serveAgentScript(res);
    if (path === '/agent/info.json') {
      const body = JSON.stringify({ PublicUrl: this.publicUrl, AgentScript: `${this.publicUrl}/agent/smcd-agent.sh` });
      return void res.writeHead(200, { 'content-type': 'application/json;charset=utf-8', 'cache-control': 'no-store' }).end(body);
    }
    const body = JSON.stringify({
      RequestId: newRequestId(),
      HostId: HOST_ID,
      Code: 'NotFound',
      Message: 'The specified path does not exist. The API is served at /.',
      Recommend: '',
    });
    res.writeHead(404, { 'content-type': 'application/json;charset=utf-8' }).end(body);
  }

  async #readiness(res: ServerResponse): Promise<void> {
    try {
      if (!this.#ready) throw new Error('shutting down');
      await withTimeout(this.options.store.ping(), 2_000);
      plain(res, 200, 'ready');
    } catch {
      plain(res, 503, 'not ready');
    }
  }

  #serveConsole(segment: string, res: ServerResponse): void {
    const name = decodePathSegment(segment);
    if (name === undefined) {
      plain(res, 400, 'bad request: malformed percent-encoding in the path', newRequestId());
      return;
    }
    const file = this.#console.get(name === '' ? 'index.html' : name);
    if (!file) return void res.writeHead(404, { ...CONSOLE_HEADERS, 'content-type': 'text/plain;charset=utf-8' }).end('not found\n');
    res.writeHead(200, { ...CONSOLE_HEADERS, 'content-type': file.type, 'content-length': file.body.length }).end(file.body);
  }

  /** The shell agent, with this server's public URL filled in so `curl ... | sh` needs no endpoint. */
  #serveAgentScript(res: ServerResponse): void {
    if (!this.#agentScript) {
      plain(res, 404, 'not found');
      return;
    }
    this.#agentScriptFilled ??= {
      type: this.#agentScript.type,
      body: Buffer.from(this.#agentScript.body.toString('utf8').replace(PUBLIC_URL_PLACEHOLDER, this.publicUrl)),
    };
    const { body, type } = this.#agentScriptFilled;
    res
      .writeHead(200, { 'content-type': type, 'content-length': body.length, 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' })
      .end(body);
  }

  /** Where sources reach this server: --public-url, else the address it listens on. */
  get publicUrl(): string {
    return this.options.publicUrl ?? this.#address ?? '';
  }

  listen(port: number, host: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        const a = this.http.address() as AddressInfo;
        const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        this.#address = `${this.options.tls ? 'https' : 'http'}://${shown}:${a.port}`;
        // Nonces and idempotency keys older than their window are forgotten, events past their retention too.
        const retentionMs = (this.options.auditRetentionDays ?? DEFAULT_AUDIT_RETENTION_DAYS) * DAY_MS;
        this.#purgeTimer = setInterval(() => {
          const now = this.options.clock();
          this.options.store.purgeExpired(now, now - retentionMs).catch(() => {});
        }, 60_000).unref();
        const sweepMs = this.options.sweepIntervalMs ?? Math.min(60_000, Math.max(1_000, this.options.settings.heartbeatRateSeconds * 1000));
        this.#sweepTimer = setInterval(() => void this.sweep(), sweepMs).unref();
        this.#dispatcher.start();
        resolve(this.#address);
      });
    });
  }

  /**
   * Records what smcd notices by itself: sources gone Offline (each once, on whichever node
   * sweeps first) and codes about to expire for the webhooks that asked (API.md 5.5, 5.6).
   */
  sweep(): Promise<void> {
    this.#sweeping ??= (async () => {
      const { store, clock, settings, log } = this.options;
      const now = clock();
      try {
        // In bounded batches: a whole network going silent at once is many short transactions.
        const since = onlineSince(now, settings.heartbeatRateSeconds);
        while ((await store.markOffline(since, offlineEvent(now), OFFLINE_BATCH)) === OFFLINE_BATCH) {
          /* the next batch */
        }
        await store.noticeExpiringTokens(now, expiringEvent(now));
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'offline and expiry sweep failed; retrying at the next one');
      } finally {
        this.#sweeping = undefined;
      }
    })();
    return this.#sweeping;
  }

  /** Stops accepting, lets in-flight requests finish, then closes the store. */
  async close(): Promise<void> {
    this.#ready = false;
    clearInterval(this.#purgeTimer);
    clearInterval(this.#sweepTimer);
    await this.#sweeping;
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeIdleConnections();
    });
    await this.services.heartbeats.close();
    await this.#dispatcher.stop();
    await this.options.store.close();
  }
}
