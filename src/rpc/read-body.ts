import type { IncomingMessage } from 'node:http';
import { errors } from './errors.ts';

/**
 * Reads the body up to `limit` bytes. A declared or actual size over the limit
 * is refused with 413 without reading the rest.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(errors.entityTooLarge(limit));
  if (declared === '0' || (declared === undefined && req.headers['transfer-encoding'] === undefined)) {
    return Promise.resolve(Buffer.alloc(0));
  }
  return new Promise((resolve, reject) => new BodyReader(req, limit, resolve, reject));
}

/**
 * One body being read. The listeners are bound methods rather than closures made
 * per request: tsx compiles with esbuild's keepNames, which gives every named
 * closure an Object.defineProperty call - measurable on the request path.
 */
class BodyReader {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  readonly #onData = this.#data.bind(this);
  readonly #onEnd = this.#end.bind(this);
  readonly #onError = this.#error.bind(this);
  readonly #onClose = this.#close.bind(this);

  constructor(
    readonly req: IncomingMessage,
    readonly limit: number,
    readonly resolve: (body: Buffer) => void,
    readonly reject: (err: unknown) => void,
  ) {
    req.on('data', this.#onData);
    req.on('end', this.#onEnd);
    req.on('error', this.#onError);
    req.on('close', this.#onClose);
  }

  #data(chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.limit) {
      this.#cleanup();
      this.req.pause();
      this.reject(errors.entityTooLarge(this.limit));
      return;
    }
    this.#chunks.push(chunk);
  }

  #end(): void {
    this.#cleanup();
    const [only] = this.#chunks;
    this.resolve(this.#chunks.length === 1 && only ? only : Buffer.concat(this.#chunks, this.#size));
  }

  #error(err: Error): void {
    this.#cleanup();
    this.reject(err);
  }

  /** The client went away (or a timeout destroyed the socket) before the body ended. */
  #close(): void {
    this.#cleanup();
    this.reject(errors.requestTimeout());
  }

  #cleanup(): void {
    this.req.off('data', this.#onData);
    this.req.off('end', this.#onEnd);
    this.req.off('error', this.#onError);
    this.req.off('close', this.#onClose);
  }
}
