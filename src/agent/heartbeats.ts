import { setTimeout as sleep } from 'node:timers/promises';
import { type ApiCallError, RpcClient } from '../client/rpc-client.ts';
import { AgentError, explainFailure, isKeyRejected, isTransient } from './explain.ts';
import { systemInfoOf } from './import.ts';
import { collectMachineInfo, type MachineInfo } from './probe.ts';
import { type AgentState, loadState, rateOf, saveState } from './state-file.ts';

const HEARTBEAT_TIMEOUT_MS = 10_000;

export interface HeartbeatOptions {
  state: AgentState;
  stateDir: string;
  /** Named in messages about a failed re-import. */
  tokenId?: string | undefined;
  /** Imports again with the activation code; absent when the agent was started without one. */
  reimport?: (() => Promise<AgentState>) | undefined;
  /** Aborted on SIGTERM / SIGINT: the loop finishes the beat in flight and returns. */
  signal: AbortSignal;
  /** One line per event worth telling an operator (a failed beat, a re-import). */
  warn: (line: string) => void;
  probe?: () => Promise<MachineInfo>;
}

/**
 * Sends ReportSourceServerHeartbeat every HeartbeatRate seconds (the rate the server last
 * named) until the signal is aborted. The import counted as the first beat, so the loop waits
 * one period before the next. Transient failures are retried at the next beat; a key the
 * server no longer accepts is re-read from the state file (another run may have rotated it),
 * then replaced by importing again when the code is at hand. Throws AgentError when the
 * source cannot be kept alive at all.
 */
export async function sendHeartbeats(opts: HeartbeatOptions): Promise<void> {
  const { stateDir, signal, warn } = opts;
  const probe = opts.probe ?? (() => collectMachineInfo());
  let state = opts.state;
  let lastBeat = Date.now();
  while (!signal.aborted) {
    const wait = Math.max(0, lastBeat + state.heartbeatRate * 1000 - Date.now());
    try {
      await sleep(wait, undefined, { signal });
    } catch {
      break; // aborted: stop cleanly
    }
    lastBeat = Date.now();
    const context = { endpoint: state.endpoint, tokenId: opts.tokenId };
    try {
      const client = new RpcClient(state.endpoint, { accessKeyId: state.sourceKeyId, accessKeySecret: state.sourceKeySecret }, HEARTBEAT_TIMEOUT_MS);
      const res = await client.call('ReportSourceServerHeartbeat', {
        SourceId: state.sourceId,
        SystemInfo: systemInfoOf(await probe()),
      });
      const rate = rateOf(res.HeartbeatRate, state.heartbeatRate);
      if (rate !== state.heartbeatRate) {
        state = { ...state, heartbeatRate: rate };
        await saveState(stateDir, state);
      }
    } catch (err) {
      if (err instanceof AgentError) throw err;
      if (!isKeyRejected(err)) {
        warn(`heartbeat for ${state.sourceId} failed: ${explainFailure(err, context)}; retrying in ${state.heartbeatRate} s`);
        continue;
      }
      const reason = (err as ApiCallError).code;
      const saved = await loadState(stateDir).catch(() => undefined);
      if (saved && saved.sourceId === state.sourceId && saved.sourceKeySecret !== state.sourceKeySecret) {
        warn(`the key of ${state.sourceId} was replaced by another import on this machine; using the new one`);
        state = { ...saved, endpoint: state.endpoint };
        continue;
      }
      if (!opts.reimport) {
        throw new AgentError(
          `${state.endpoint} no longer accepts the key of source ${state.sourceId} (${reason}): the source was probably deleted; run "smcd agent import" again with an activation code`,
        );
      }
      warn(
        `${state.endpoint} no longer accepts the key of source ${state.sourceId} (${reason}): importing this machine again with the activation code`,
      );
      try {
        state = await opts.reimport();
        warn(`imported again as ${state.sourceId}`);
      } catch (reimportErr) {
        if (!isTransient(reimportErr)) throw new AgentError(`importing again failed: ${explainFailure(reimportErr, context)}`);
        warn(`importing again failed: ${explainFailure(reimportErr, context)}; retrying in ${state.heartbeatRate} s`);
      }
    }
  }
}
