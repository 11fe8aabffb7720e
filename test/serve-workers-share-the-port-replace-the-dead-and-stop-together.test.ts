import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { readRootCredentials } from '../src/bootstrap.ts';
import { createTestDatabase, postgresSkipReason, type TestDatabase } from './helpers/postgres.ts';
import { type ServerProcess, SMCD_BIN, startServerProcess } from './helpers/process-server.ts';
import { runProcess } from './helpers/run-process.ts';
import { tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';
import { waitFor } from './helpers/wait.ts';

/** The JSON log lines a server process wrote so far. */
function logLines(server: ServerProcess): Array<Record<string, any>> {
  return server.output.flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('smcd serve --workers 2 on PostgreSQL', { skip: await postgresSkipReason() }, () => {
  const dir = tempDir();
  let db: TestDatabase;
  let server: ServerProcess;
  let root: Creds;
  let workers: number[];

  before(async () => {
    db = await createTestDatabase();
    server = await startServerProcess(['--workers', '2', '--data-dir', dir, '--database', db.url]);
    const c = readRootCredentials(dir)!;
    root = { id: c.AccessKeyId, secret: c.AccessKeySecret };
    workers = await waitFor('the primary to name its workers', () => logLines(server).find((l) => Array.isArray(l.workers))?.workers);
  });
  after(async () => {
    await server?.stop('SIGKILL');
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends `n` signed creates at once; returns the pid of the worker that answered each (from its request log line). */
  async function createsAnsweredBy(n: number): Promise<Set<number>> {
    const responses = await Promise.all(Array.from({ length: n }, (_, i) => callV1(server.url, root, 'CreateAccessToken', { Name: `w${i}` })));
    for (const r of responses) assert.equal(r.status, 200, r.text);
    const ids = new Set(responses.map((r) => r.body.RequestId as string));
    const lines = await waitFor('a request log line for every create', () => {
      const found = logLines(server).filter((l) => ids.has(l.requestId) && l.msg === 'request');
      return found.length === n ? found : undefined;
    });
    return new Set(lines.map((l) => l.pid as number));
  }

  it('the primary forks two workers, and signed creates are answered by both', async () => {
    assert.equal(workers.length, 2);
    assert.ok(!workers.includes(server.child.pid!), 'the workers are other processes than the primary');
    const pids = await createsAnsweredBy(40);
    assert.deepEqual([...pids].sort(), [...workers].sort());
  });

  it('/metrics is the sum over every worker', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const m = /^smcd_requests_total\{action="CreateAccessToken",code="OK"\} (\d+)$/m.exec(text);
    assert.equal(m?.[1], '40', text.slice(0, 2000));
    assert.match(text, /^smcd_build_info\{[^}]*store="postgres"[^}]*\} 1$/m);
  });

  it('SIGHUP reaches every worker', async () => {
    server.child.kill('SIGHUP');
    const pids = await waitFor('both workers to handle SIGHUP', () => {
      const seen = new Set(
        logLines(server)
          .filter((l) => /^SIGHUP: nothing to reload/.test(l.msg))
          .map((l) => l.pid as number),
      );
      return seen.size === 2 ? seen : undefined;
    });
    assert.deepEqual([...pids].sort(), [...workers].sort());
  });

  it('a killed worker is replaced and the service keeps answering', async () => {
    const [victim, survivor] = workers as [number, number];
    process.kill(victim, 'SIGKILL');
    const replacement = await waitFor('a replacement worker', () => {
      const line = logLines(server).find((l) => /^worker \d+ \(pid \d+\) listening$/.test(l.msg ?? ''));
      return line?.pid as number | undefined;
    });
    assert.ok(!workers.includes(replacement));
    assert.ok(logLines(server).some((l) => l.level === 40 && l.pid === victim && /died \(SIGKILL\); starting another/.test(l.msg)));
    const pids = await createsAnsweredBy(40);
    assert.deepEqual([...pids].sort(), [survivor, replacement].sort());
    workers = [survivor, replacement];
  });

  it('SIGTERM to the primary drains and stops every worker, exit code 0', async () => {
    const code = await server.stop('SIGTERM');
    assert.equal(code, 0);
    for (const pid of workers) assert.equal(alive(pid), false, `worker ${pid} still runs`);
    const stopped = logLines(server).filter((l) => l.msg === 'stopped');
    assert.equal(stopped.length, 3, 'two workers and the primary say they stopped');
  });
});

describe('smcd serve --workers: a usage error for a bad count, or with SQLite', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));
  const serve = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runProcess(process.execPath, [SMCD_BIN, 'serve', '--port', '0', '--data-dir', dir, ...args], { env: { ...process.env, ...env } });

  for (const bad of ['0', 'two', '-1', '1.5']) {
    it(`--workers ${bad}: exit 2 and one line naming the flag`, async () => {
      const run = await serve([`--workers=${bad}`]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /--workers must be an integer from 1 to 256/);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    });
  }

  it('--workers 2 with SQLite: exit 2 and one line saying PostgreSQL is needed', async () => {
    for (const args of [
      ['--workers', '2'],
      ['--workers', '2', '--database', `sqlite:${dir}/other.db`],
    ]) {
      const run = await serve(args);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /--workers above 1 needs PostgreSQL/);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    }
    // --workers 1 is the ordinary single process, SQLite included.
    const single = await startServerProcess(['--workers', '1', '--data-dir', dir]);
    assert.equal(await single.stop(), 0);
  });

  it('SMCD_WORKERS=0: exit 2', async () => {
    const run = await serve([], { SMCD_WORKERS: '0' });
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /--workers/);
  });
});
