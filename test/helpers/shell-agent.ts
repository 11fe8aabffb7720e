import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The POSIX shell agent, as the server serves it (before the endpoint is baked in). */
export const SHELL_AGENT = fileURLToPath(new URL('../../agent/smcd-agent.sh', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../fixtures/shell-agent/', import.meta.url));

/** Where a command lives on this machine, or undefined. */
export function which(name: string): string | undefined {
  const r = spawnSync('/bin/sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path.startsWith('/') ? path : undefined;
}

const scratch: string[] = [];
/** A temporary directory removed when the test process exits. */
export function scratchDir(prefix = 'smcd-sh-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}
process.once('exit', () => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/**
 * A shell the agent must run under. `busybox` runs `busybox sh` with a PATH whose first entry is
 * a directory of BusyBox applet links, so sed, awk, od, sort, wget, ip... are BusyBox's as on
 * Alpine; openssl and curl (not applets) still come from /usr/bin.
 */
export interface Shell {
  name: string;
  /** Why it cannot run here (not installed), or undefined. */
  missing?: string;
  command: string;
  args: string[];
  path: string;
  /** The directory of BusyBox applet links (busybox only). */
  appletDir?: string;
}

const SYSTEM_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin';
let appletDir: string | undefined;

function busyboxApplets(busybox: string): string {
  if (appletDir) return appletDir;
  const dir = scratchDir('smcd-busybox-');
  const r = spawnSync(busybox, ['--install', '-s', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`busybox --install -s failed: ${r.stderr}`);
  appletDir = dir;
  return dir;
}

/**
 * dash with another awk first on PATH (mawk is Debian's and Ubuntu's default awk; its 1.3.3
 * on Ubuntu 18.04 has known quirks), as `dash+mawk`.
 */
export function shellWithAwk(awk: string): Shell {
  const base = shell('dash');
  const bin = which(awk);
  if (!bin || base.missing) return { ...base, name: `dash+${awk}`, missing: base.missing ?? `${awk} is not installed` };
  const dir = scratchDir(`smcd-${awk}-`);
  symlinkSync(bin, join(dir, 'awk'));
  return { ...base, name: `dash+${awk}`, path: `${dir}:${base.path}` };
}

export function shell(name: 'dash' | 'busybox' | 'bash'): Shell {
  const bin = which(name);
  if (!bin) return { name, missing: `${name} is not installed`, command: name, args: [], path: SYSTEM_PATH };
  if (name === 'busybox') {
    const dir = busyboxApplets(bin);
    return { name, command: bin, args: ['sh'], path: `${dir}:${SYSTEM_PATH}`, appletDir: dir };
  }
  return { name, command: bin, args: [], path: SYSTEM_PATH };
}

/**
 * `describe` options for a shell: skipped when it is not installed, except under CI, where
 * .ci/run installs dash and busybox and a missing one must fail the run, not hide it.
 */
export function shellSkip(sh: Shell): { skip?: string } {
  if (!sh.missing) return {};
  if (process.env.CI) return {};
  return { skip: sh.missing };
}

/** Fails the test (under CI) when the shell is missing. */
export function assertShell(sh: Shell): void {
  if (sh.missing) throw new Error(`${sh.missing}: .ci/run installs dash and busybox (apt-get install dash busybox)`);
}

export interface AgentRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface AgentOptions {
  env?: Record<string, string | undefined>;
  stdin?: string | Buffer;
  /** The script to run; default the agent file. */
  script?: string;
  timeoutMs?: number;
}

/**
 * The agent's environment: nothing inherited from the test process (no proxies, no SMCD_* of
 * the developer), a scratch HOME, and never a real install: SMCD_NO_INSTALL=1 and a scratch
 * SMCD_INSTALL_ROOT unless the test says otherwise (these tests run as root on CI).
 */
export function agentEnv(sh: Shell, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: sh.path,
    HOME: scratchDir('smcd-home-'),
    TMPDIR: scratchDir('smcd-tmp-'),
    LANG: 'C.UTF-8',
    SMCD_NO_INSTALL: '1',
    SMCD_INSTALL_ROOT: scratchDir('smcd-root-'),
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** A started agent process: its output so far, and its end. */
export function startAgent(sh: Shell, args: string[], opts: AgentOptions = {}) {
  const env = agentEnv(sh, opts.env);
  const argv = [...sh.args, opts.script ?? SHELL_AGENT, ...args];
  const child = spawn(sh.command, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const run = { stdout: '', stderr: '' };
  child.stdout.on('data', (c) => (run.stdout += c));
  child.stderr.on('data', (c) => (run.stderr += c));
  child.stdin.on('error', () => {});
  child.stdin.end(opts.stdin ?? '');
  const exited = new Promise<AgentRun>((resolve, reject) =>
    child.once('close', (code, signal) => {
      // Its scratch files (an answer there holds a source secret) go with it, unless it was killed outright.
      const left = signal === 'SIGKILL' ? [] : readdirSync(env.TMPDIR!);
      if (left.length > 0) reject(new Error(`the agent left ${left.join(', ')} in its TMPDIR\n${run.stderr}`));
      else resolve({ code, signal, stdout: run.stdout, stderr: run.stderr });
    }),
  );
  return { child, run, exited };
}

/**
 * Runs the agent to its end. Asynchronous on purpose: the server under test lives in this
 * process and must keep answering while the agent waits for it.
 */
export async function runAgent(sh: Shell, args: string[], opts: AgentOptions = {}): Promise<AgentRun> {
  const agent = startAgent(sh, args, opts);
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  try {
    return await agent.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** `sh -c COMMAND` under the given shell and its PATH, with the agent's environment. */
export async function runShell(sh: Shell, command: string, opts: AgentOptions = {}): Promise<AgentRun> {
  const child = spawn(sh.command, [...sh.args, '-c', command], { env: agentEnv(sh, opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  try {
    return await new Promise<AgentRun>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  } finally {
    clearTimeout(timer);
  }
}

/** Parses `probe` output: Key=value lines, with \\ and \n escaped. */
export function parseProbe(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    const i = line.indexOf('=');
    out.set(
      line.slice(0, i),
      line.slice(i + 1).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)),
    );
  }
  return out;
}

/** Parses the agent's state file: key=value lines. */
export function readStateFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/**
 * A directory of wrappers, one per tool the agent may run, each appending its own argv and
 * environment (NUL-separated) to `log` and then running the real tool. With only this directory
 * on PATH, every child process the agent starts is recorded.
 */
export function recordingPath(sh: Shell, log: string, tools: string[]): string {
  const dir = scratchDir('smcd-argv-');
  for (const tool of tools) {
    const real = sh.appletDir && existsSync(join(sh.appletDir, tool)) ? join(sh.appletDir, tool) : which(tool);
    if (!real) continue;
    const wrapper = join(dir, tool);
    writeFileSync(
      wrapper,
      `#!/bin/sh\n{ printf 'ARGV\\0'; printf '%s\\0' "$0" "$@"; printf 'ENV\\0'; /usr/bin/env -0; printf '\\n'; } >>'${log}'\nexec '${real}' "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
  }
  return dir;
}

/** Fake `systemctl` and `crontab` that record their arguments; crontab keeps its table in a file. */
export function fakeSchedulers(dir: string, opts: { crontab?: boolean } = {}): { bin: string; log: string; table: string } {
  const bin = join(dir, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  const log = join(dir, 'scheduler.log');
  const table = join(dir, 'crontab.txt');
  writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\nprintf 'systemctl %s\\n' "$*" >>'${log}'\n`);
  chmodSync(join(bin, 'systemctl'), 0o755);
  if (opts.crontab !== false) {
    writeFileSync(
      join(bin, 'crontab'),
      `#!/bin/sh\nprintf 'crontab %s\\n' "$*" >>'${log}'\n` +
        `case "$1" in -l) [ -f '${table}' ] || { echo 'no crontab for root' >&2; exit 1; }; cat '${table}' ;; -) cat >'${table}' ;; *) exit 2 ;; esac\n`,
    );
    chmodSync(join(bin, 'crontab'), 0o755);
  }
  return { bin, log, table };
}
