import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startServerProcess } from './helpers/process-server.ts';
import { tempDir } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * npm's environment without what an enclosing `npm test` exports (npm_config_prefix and the
 * like would redirect the install); the registry is reached with the user's own npm config.
 * better-sqlite3 is compiled against the headers of the Node.js running this test (which
 * also runs the installed smcd): on Node 24 in CI, not the machine's Node 20 that npmrc names.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  const nodeDir = dirname(dirname(process.execPath));
  const headers = existsSync(join(nodeDir, 'include', 'node', 'node.h')) ? { npm_config_nodedir: nodeDir } : {};
  return { ...env, ...headers, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
}

function run(command: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const started = Date.now();
  const r = spawnSync(command, args, { cwd: opts.cwd ?? REPO, env: npmEnv(), encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000 });
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed (${r.signal ?? r.status}):\n${r.stdout}\n${r.stderr}`);
  return { stdout: r.stdout, seconds: (Date.now() - started) / 1000 };
}

// One test: each step needs the one before, and the install (better-sqlite3 built from source
// when no prebuilt binary can be downloaded) takes a minute or more.
it('the packed tarball holds only what runs, installs globally, and the installed smcd serves the API, the CLI, the agent and the console', {
  timeout: 600_000,
}, async (t) => {
  const tmp = tempDir('smcd-pack-');
  // The installed prefix holds ~40 MB of dependencies.
  t.after(() => rmSync(tmp, { recursive: true, force: true }));

  // `npm pack` runs `prepare` (the build) and reports the files it packed.
  const pack = run('npm', ['pack', '--json', '--pack-destination', tmp], { timeoutMs: 120_000 });
  const [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  assert.ok(packed);
  const files = packed.files.map((f) => f.path);
  for (const dir of ['src/', 'test/', 'bench/', 'scripts/', '.ci/', 'docs/', 'deploy/', 'node_modules/'])
    assert.deepEqual(
      files.filter((f) => f.startsWith(dir)),
      [],
      `nothing from ${dir}`,
    );
  assert.equal(files.includes('dist/.tsbuildinfo'), false, 'no build cache');
  for (const f of [
    'dist/cli/main.js',
    'dist/server.js',
    'dist/store/sqlite/read-worker.js',
    'dist/store/sqlite/migrations.js',
    'dist/store/postgres/migrations.js',
    'bin/smcd.js',
    'console/index.html',
    'agent/smcd-agent.sh',
    'package.json',
    'LICENSE',
    'README.md',
    'CHANGELOG.md',
    'SECURITY.md',
  ])
    assert.ok(files.includes(f), `the tarball has ${f}`);
  assert.deepEqual(
    files.filter((f) => f.endsWith('.ts')),
    [],
    'no TypeScript sources',
  );

  // A global install into a prefix of our own, dependencies from the registry.
  const prefix = join(tmp, 'prefix');
  const install = run('npm', ['install', '-g', '--prefix', prefix, join(tmp, packed.filename)], { timeoutMs: 540_000 });
  t.diagnostic(`npm pack: ${pack.seconds.toFixed(1)} s; npm install -g from the tarball: ${install.seconds.toFixed(1)} s`);
  const smcd = join(prefix, 'bin', 'smcd');
  assert.equal(run(smcd, ['--version'], { cwd: tmp }).stdout.trim(), 'smcd 0.1.0');

  // The installed copy serves: started from another directory, so nothing resolves to this checkout.
  const data = join(tmp, 'data');
  const server = await startServerProcess(['--data-dir', data], { SMCD_LOG_LEVEL: 'info' }, 30_000, [smcd]);
  try {
    const creds = JSON.parse(readFileSync(join(data, 'root-credentials.json'), 'utf8'));
    const root = { id: creds.AccessKeyId, secret: creds.AccessKeySecret };
    const created = await callV1(server.url, root, 'CreateAccessToken', { Name: 'from-the-tarball', Count: '2' });
    assert.equal(created.status, 200, created.text);
    const id: string = created.body.AccessTokenId;

    const list = run(smcd, ['token', 'list', '--endpoint', server.url, '--data-dir', data, '--output', 'json'], { cwd: tmp });
    assert.match(list.stdout, new RegExp(id));
    assert.match(list.stdout, /from-the-tarball/);

    const agent = await fetch(`${server.url}/agent/smcd-agent.sh`);
    assert.equal(agent.status, 200);
    assert.match(await agent.text(), /^#!\/bin\/sh/);
    const consolePage = await fetch(`${server.url}/console/`);
    assert.equal(consolePage.status, 200);
    assert.match(await consolePage.text(), /<html/i);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /smcd_build_info\{version="0\.1\.0",node="[^"]+",store="sqlite"\} 1/);
  } finally {
    assert.equal(await server.stop(), 0, server.output.join('\n'));
  }
});
