import { randomBytes } from 'node:crypto';
import { type Call, type Creds, signedCall, signedForm } from './presign.ts';
import { BENCH_ROOT } from './processes.ts';

export type ScenarioName = 'create' | 'import' | 'heartbeat' | 'list-1k' | 'list-1m' | 'list-filtered' | 'list-wave';
export const SCENARIOS: readonly ScenarioName[] = ['create', 'import', 'heartbeat', 'list-1k', 'list-1m', 'list-filtered', 'list-wave'];

/** Codes a scenario puts into the database before the server starts (not through the API). */
export const SEED: Record<ScenarioName, number> = {
  create: 0,
  import: 0,
  heartbeat: 0,
  'list-1k': 1_000,
  'list-1m': 1_000_000,
  'list-filtered': 100_000,
  'list-wave': 1_000_000,
};

/** What smcd is asked, and what the baseline is sent instead (one request of the same shape). */
export interface Workload {
  /** Prepares and returns a maker for `count` distinct, signed requests (unique nonces). */
  prepare(count: number): Promise<(i: number) => Call>;
  sample(): Call;
  /** Write scenarios also get the half-rate latency measurement. */
  writes: boolean;
  /** A rate smcd cannot exceed in this scenario, to pre-sign fewer requests than the baseline's rate would ask. */
  maxRate?: number;
}

/** A signed call through the API, for set-up (codes for the import scenario). */
export async function callApi(url: string, creds: Creds, action: string, params: Record<string, string>): Promise<any> {
  const res = await fetch(`${url}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: signedForm(creds, 'POST', action, params),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${action} answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

const createParams = { Name: 'bench-wave', Description: 'benchmark', Count: '100', TimeToLiveInDays: '30' };

/** What the agent sends about a typical Linux machine. */
function importParams(machineId: string): Record<string, string> {
  return {
    MachineId: machineId,
    Hostname: `web-${machineId.slice(-6)}`,
    Platform: 'Debian GNU/Linux 12',
    Architecture: 'x86_64',
    KernelLevel: '6',
    AgentVersion: 'smcd-agent/0.1.0',
    SystemDiskSize: '40',
    'DataDisk.1.Index': '1',
    'DataDisk.1.Path': '/data',
    'DataDisk.1.Size': '200',
    SystemInfo: JSON.stringify({ hostname: `web-${machineId.slice(-6)}`, ipv4: ['10.0.3.17'], ipv6: [], cores: 4, memory: 8192 }),
  };
}

/** Imports per activation code: its Count. Each import uses one slot (a new MachineId). */
const CODE_COUNT = 1000;

export function workload(name: ScenarioName, url: () => string): Workload {
  switch (name) {
    case 'create':
      return {
        writes: true,
        sample: () => signedCall(BENCH_ROOT, 'POST', 'CreateAccessToken', createParams),
        prepare: async () => () => signedCall(BENCH_ROOT, 'POST', 'CreateAccessToken', createParams),
      };
    case 'import': {
      const run = randomBytes(4).toString('hex');
      let machine = 0;
      return {
        writes: true,
        sample: () =>
          signedCall({ id: 'at-00000000000000000000', secret: 'x'.repeat(32) }, 'POST', 'ImportSourceServer', importParams(`m-${run}-000000`)),
        async prepare(count) {
          // Fresh codes for every batch of requests, used round-robin: many codes and
          // many machines, as in a migration wave; no code runs out of slots.
          const n = Math.ceil(count / CODE_COUNT) + 1;
          const codes: Creds[] = [];
          for (let i = 0; i < n; i += 16) {
            const batch = await Promise.all(
              Array.from({ length: Math.min(16, n - i) }, () =>
                callApi(url(), BENCH_ROOT, 'CreateAccessToken', { Name: 'bench-import', Count: String(CODE_COUNT) }),
              ),
            );
            for (const b of batch) codes.push({ id: b.AccessTokenId, secret: b.AccessTokenCode });
          }
          return (i) => signedCall(codes[i % n]!, 'POST', 'ImportSourceServer', importParams(`m-${run}-${String(++machine).padStart(6, '0')}`));
        },
      };
    }
    case 'heartbeat': {
      // A fleet's steady load: sources, imported first, each beating with its own key.
      const fleet: Array<{ key: Creds; sourceId: string }> = [];
      const run = randomBytes(4).toString('hex');
      return {
        writes: true,
        sample: () =>
          signedCall({ id: 'sk-00000000000000000000', secret: 'x'.repeat(32) }, 'POST', 'ReportSourceServerHeartbeat', {
            SourceId: 's-00000000000000000000',
          }),
        async prepare() {
          if (fleet.length === 0) {
            const code = await callApi(url(), BENCH_ROOT, 'CreateAccessToken', { Name: 'bench-fleet', Count: '1000' });
            const creds = { id: code.AccessTokenId, secret: code.AccessTokenCode };
            for (let i = 0; i < 500; i += 25) {
              const batch = await Promise.all(
                Array.from({ length: 25 }, (_, j) =>
                  callApi(url(), creds, 'ImportSourceServer', importParams(`hb-${run}-${String(i + j).padStart(6, '0')}`)),
                ),
              );
              for (const b of batch) fleet.push({ key: { id: b.SourceKeyId, secret: b.SourceKeySecret }, sourceId: b.SourceId });
            }
          }
          return (i) => {
            const source = fleet[i % fleet.length]!;
            return signedCall(source.key, 'POST', 'ReportSourceServerHeartbeat', { SourceId: source.sourceId });
          };
        },
      };
    }
    case 'list-wave': {
      // Issue 14's mixed load: status-filtered lists over a million codes and an import wave
      // (each import a new machine, round-robin over fresh codes), half and half.
      const imports = workload('import', url);
      return {
        writes: false,
        maxRate: 10_000,
        sample: () => signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', { Status: 'activated' }),
        async prepare(count) {
          const importCall = await imports.prepare(Math.ceil(count / 2));
          const statuses = ['activated', 'unactivated', 'expired'];
          return (i) => (i % 2 === 0 ? signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', { Status: statuses[(i / 2) % 3]! }) : importCall(i >> 1));
        },
      };
    }
    case 'list-filtered':
      // The load: status-filtered lists, each of which must count the matching codes.
      return {
        writes: false,
        maxRate: 10_000,
        sample: () => signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', { Status: 'activated' }),
        prepare: async () => (i) => signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', { Status: ['activated', 'unactivated', 'expired'][i % 3]! }),
      };
    case 'list-1k':
    case 'list-1m':
      // The console's first page: newest first, default page size.
      return {
        writes: false,
        sample: () => signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', {}),
        prepare: async () => () => signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', {}),
      };
  }
}
