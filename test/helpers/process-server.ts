import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const SMCD_BIN = fileURLToPath(new URL('../../bin/smcd.js', import.meta.url));

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** stdout and stderr lines so far. */
  output: string[];
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `smcd serve` as a child process on a free port and waits for its start-up line.
 * `command` is how smcd is run: this checkout's bin/smcd.js by default, or an installed `smcd`.
 */
export function startServerProcess(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 20_000,
  command: string[] = [process.execPath, SMCD_BIN],
): Promise<ServerProcess> {
  const [file = process.execPath, ...commandArgs] = command;
  const child = spawn(file, [...commandArgs, 'serve', '--port', '0', ...args], {
    env: { ...process.env, SMCD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`smcd did not start in ${timeoutMs} ms:\n${output.join('\n')}`));
    }, timeoutMs);
    const onLine = (line: string) => {
      output.push(line);
      const m = /smcd listening on (https?:\/\/\S+?);/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1]!,
          child,
          output,
          async stop(signal = 'SIGTERM') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    };
    for (const stream of [child.stdout!, child.stderr!]) {
      let buf = '';
      stream.on('data', (chunk) => {
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          onLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      });
    }
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`smcd exited with ${code} before listening:\n${output.join('\n')}`));
    });
  });
}
