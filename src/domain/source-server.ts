/** A source is Unavailable after this many heartbeat periods without one. */
export const MISSED_HEARTBEATS = 3;

/** The earliest last-heartbeat time that still counts as Available. */
export function onlineSince(now: number, heartbeatRateSeconds: number): number {
  return now - MISSED_HEARTBEATS * heartbeatRateSeconds * 1000;
}

export function sourceState(lastHeartbeatAt: number, now: number, heartbeatRateSeconds: number) {
  return lastHeartbeatAt >= onlineSince(now, heartbeatRateSeconds)
    ? ({ state: 'Available', errorCode: '' } as const)
    : ({ state: 'Unavailable', errorCode: 'SourceServer.Offline' } as const);
}
