import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/**
 * The main thread's .cpuprofile in `dir`, written by `node --cpu-prof` when the process
 * exits. Names are CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the
 * main thread (tsx's module-loader worker writes one too).
 */
export function mainThreadProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  return files.length ? join(dir, files.sort().at(-1)!) : undefined;
}

const shortUrl = (url: string) =>
  url
    .replace(/^file:\/\//, '')
    .replace(/^.*\/node_modules\//, 'npm:')
    .replace(/^.*\/work\/[^/]+\//, '')
    .replace(/^node:/, 'node:');

/**
 * Self time by function and by file, as a share of all samples: enough to see
 * what is hot without opening the profile in a viewer.
 */
export function summariseProfile(path: string, top = 25): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as { nodes: ProfileNode[] };
  // Shares are of the busy samples: waiting in the event loop is not a cost to remove.
  const busy = (node: ProfileNode) => node.callFrame.functionName !== '(idle)';
  const all = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0);
  const total = profile.nodes.reduce((n, node) => n + (busy(node) ? (node.hitCount ?? 0) : 0), 0);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (!hits || !busy(node)) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url ? shortUrl(url) : '(native)';
    const fn = `${functionName || '(anonymous)'} ${file}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + hits);
    byFile.set(file, (byFile.get(file) ?? 0) + hits);
  }
  const pct = (n: number) => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  const lines = [
    `profile ${path}: ${total} busy samples of ${all} (${((100 * total) / all).toFixed(0)}% busy)`,
    '  self time by function, share of busy samples:',
  ];
  for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('  self time by file:');
  for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}
