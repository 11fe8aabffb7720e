import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread on the module next to `base` named `name` (without extension).
 * Compiled, that is a `.js` file beside the caller; when the TypeScript sources run
 * directly (tests, `npm run bench`), the worker first registers tsx for itself, as
 * loader hooks of the main thread do not reach workers.
 */
export function startWorker(base: string, name: string, options: WorkerOptions = {}): Worker {
  const typescript = base.endsWith('.ts');
  const url = new URL(`./${name}${typescript ? '.ts' : '.js'}`, base);
  if (!typescript) return new Worker(url, options);
  const boot = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { ...options, eval: true });
}
