import { newEventId } from '../crypto/ids.ts';
import { type AuditEvent, eventMaker, SYSTEM_ACTOR } from '../domain/audit-event.ts';
import { formatTime } from '../domain/time.ts';
import type { Heartbeat } from '../store/store.ts';

/**
 * The events smcd records by itself rather than for one request (README, "Audit events"):
 * a source going offline (found by the periodic sweep), coming back (found by the heartbeat
 * flush), and a code about to expire (the ExpiringSoon sweep).
 */
export const onlineEvent = (beat: Heartbeat): AuditEvent =>
  eventMaker(newEventId, beat.actor ?? SYSTEM_ACTOR, beat.at)('SourceServer.Online', beat.sourceId, { LastHeartbeatTime: formatTime(beat.at) });

export const offlineEvent =
  (now: number) =>
  (sourceId: string, lastHeartbeatAt: number): AuditEvent =>
    eventMaker(newEventId, SYSTEM_ACTOR, now)('SourceServer.Offline', sourceId, { LastHeartbeatTime: formatTime(lastHeartbeatAt) });

export const expiringEvent =
  (now: number) =>
  (tokenId: string, expiresAt: number, days: number): AuditEvent =>
    eventMaker(newEventId, SYSTEM_ACTOR, now)('AccessToken.ExpiringSoon', tokenId, { ExpirationTime: formatTime(expiresAt), ExpiringSoonDays: days });
