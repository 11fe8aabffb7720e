import { newSourceId, newSourceKeyId, newSourceKeySecret } from '../crypto/ids.ts';
import { isValidSourceProof } from '../crypto/source-proof.ts';
import { type ImportRefusal, importRefusal } from '../domain/access-token.ts';
import { onlineSince, type SourceRecord, sourceState } from '../domain/source-server.ts';
import { formatTime } from '../domain/time.ts';
import { type ApiError, errors } from '../rpc/errors.ts';
import { disks, integer, jsonObject, list, oneOf, tags, text } from '../rpc/params.ts';
import { int, obj, str, wrapped } from '../rpc/shapes.ts';
import type { Tagged } from '../store/store.ts';
import { batchRefusal, descriptionParam, eventsOf, nameParam, pageFields, pageNumber, pageOf, pageSize, tagsField, tagsView } from './common.ts';
import { defineAction } from './define.ts';

const sourceIdParam = text({ required: true, max: 64, doc: 'The source server id.' });
const systemInfoParam = jsonObject({ maxBytes: 1024, doc: 'JSON object, at most 1 KiB: hostname, ipv4, ipv6, cores, memory, ...' });

function refusalError(reason: ImportRefusal, clientIp: string, sourceId = ''): ApiError {
  switch (reason) {
    case 'disabled':
      return errors.tokenDisabled();
    case 'expired':
      return errors.tokenExpired();
    case 'address':
      return errors.tokenIpNotAllowed(clientIp);
    case 'machine-in-use':
      return errors.machineIdInUse(sourceId);
    case 'count':
      return errors.tokenCountExceeded();
    case 'token-gone':
      return errors.keyNotFound();
  }
}

export const importSourceServer = defineAction({
  name: 'ImportSourceServer',
  origin: 'smcd',
  summary: 'Imports a migration source, signed with an activation code; each new MachineId uses one of its imports.',
  signedBy: 'access-token',
  nonce: 'with-write',
  params: {
    MachineId: text({ required: true, min: 1, max: 128, doc: 'Stable identifier of the machine.' }),
    Name: nameParam('Source name (default: Hostname).'),
    Description: descriptionParam('Source description.'),
    Hostname: text({ max: 255, doc: 'Host name.' }),
    Platform: text({ max: 128, doc: 'Operating system, e.g. "Debian GNU/Linux 12".' }),
    Architecture: text({ max: 32, doc: 'x86_64, arm64, i386 or what the machine reports.' }),
    KernelLevel: integer({ min: 0, max: 1000, doc: 'Kernel major version.' }),
    AgentVersion: text({ max: 64, doc: 'Version of the importing agent.' }),
    SystemDiskSize: integer({ min: 0, max: 1_048_576, doc: 'System disk size in GiB.' }),
    DataDisk: disks({ maxItems: 64, doc: 'DataDisk.N.Index, DataDisk.N.Path, DataDisk.N.Size (GiB).' }),
    SystemInfo: systemInfoParam,
    SourceKeyId: text({ max: 64, doc: "smcd: the key id of this machine's source, to prove ownership on a re-import." }),
    SourceProof: text({
      max: 64,
      doc: 'smcd: lowercase hex HMAC-SHA256(source key secret, MachineId + "\\n" + SignatureNonce); required to re-import a MachineId that has a source.',
    }),
  },
  response: obj({
    SourceId: str('s- and 20 of [a-z0-9]; the same on every re-import.'),
    SourceKeyId: str('sk- and 20 of [a-z0-9]: signs the heartbeats of this source.'),
    SourceKeySecret: str('Returned only here; a re-import issues a new one and the old stops working.'),
    HeartbeatRate: int('Seconds between heartbeats.'),
  }),
  async handler(ctx, p) {
    const { store, box, log, metrics, settings } = ctx.services;
    const secret = newSourceKeySecret();
    const event = eventsOf(ctx);
    const result = await store.importSource({
      tokenId: ctx.caller.keyId,
      machineId: p.MachineId,
      now: ctx.now,
      clientIp: ctx.clientIp,
      refusal: (token) => importRefusal(token, ctx.now, ctx.clientIp),
      ownsSource: (source) =>
        p.SourceProof !== undefined &&
        p.SourceKeyId === source.keyId &&
        isValidSourceProof(p.SourceProof, box.open(source.keySealed, source.keyId), p.MachineId, ctx.signatureNonce),
      fields: {
        name: p.Name ?? null,
        description: p.Description ?? null,
        hostname: p.Hostname ?? '',
        platform: p.Platform ?? '',
        architecture: p.Architecture ?? '',
        kernelLevel: p.KernelLevel ?? null,
        agentVersion: p.AgentVersion ?? '',
        systemDiskSize: p.SystemDiskSize ?? null,
        dataDisks: p.DataDisk ?? [],
        systemInfo: JSON.stringify(p.SystemInfo ?? {}),
      },
      newSourceId: newSourceId(),
      newKeyId: newSourceKeyId(),
      sealKey: (keyId) => box.seal(secret, keyId),
      nonce: ctx.nonce,
      events: (outcome, exhausted) => {
        // A code deleted meanwhile is answered like an unknown key: nothing to record against it.
        if (outcome.outcome === 'refused') {
          if (outcome.reason === 'token-gone') return [];
          const code = refusalError(outcome.reason, ctx.clientIp, outcome.sourceId).code;
          return [event('SourceServer.ImportRefused', ctx.caller.keyId, { MachineId: p.MachineId, Code: code, SourceId: outcome.sourceId })];
        }
        const imported = event('SourceServer.Import', outcome.sourceId, {
          AccessTokenId: ctx.caller.keyId,
          MachineId: p.MachineId,
          Created: outcome.created,
          UsedSlot: outcome.usedSlot,
        });
        return exhausted ? [imported, event('AccessToken.Exhausted', ctx.caller.keyId, { SourceId: outcome.sourceId })] : [imported];
      },
    });
    if (result.outcome === 'refused') {
      metrics.importRefusals.inc({ reason: result.reason });
      log.info(
        {
          audit: 'ImportSourceServer',
          requestId: ctx.requestId,
          accessTokenId: ctx.caller.keyId,
          clientIp: ctx.clientIp,
          refused: result.reason,
          sourceId: result.sourceId,
        },
        'import refused',
      );
      throw refusalError(result.reason, ctx.clientIp, result.sourceId);
    }
    metrics.imports.inc({ slot: result.usedSlot ? 'used' : 'reimport' });
    log.info(
      {
        audit: 'ImportSourceServer',
        requestId: ctx.requestId,
        accessTokenId: ctx.caller.keyId,
        sourceId: result.sourceId,
        clientIp: ctx.clientIp,
        usedSlot: result.usedSlot,
        created: result.created,
      },
      'source imported',
    );
    return { SourceId: result.sourceId, SourceKeyId: result.keyId, SourceKeySecret: secret, HeartbeatRate: settings.heartbeatRateSeconds };
  },
});

export const reportSourceServerHeartbeat = defineAction({
  name: 'ReportSourceServerHeartbeat',
  origin: 'smcd',
  summary: "Reports that a source is alive, signed with that source's key.",
  signedBy: 'source-key',
  nonce: 'may-lag',
  quiet: true,
  params: {
    SourceId: sourceIdParam,
    SystemInfo: systemInfoParam,
    StatusInfo: text({ max: 1024, doc: 'Free-form status text, at most 1024 characters.' }),
  },
  response: obj({ HeartbeatRate: int('Seconds until the next heartbeat is due.') }),
  async handler(ctx, p) {
    const { store, settings, heartbeats } = ctx.services;
    if (p.SourceId !== ctx.caller.sourceId) {
      if (!(await store.getSource(p.SourceId))) throw errors.sourceNotFound();
      throw errors.forbidden('ReportSourceServerHeartbeat on another source');
    }
    // The source key just signed, so its source exists: the beat waits for the next batched write.
    heartbeats.add({
      sourceId: p.SourceId,
      at: ctx.now,
      systemInfo: p.SystemInfo === undefined ? undefined : JSON.stringify(p.SystemInfo),
      statusInfo: p.StatusInfo,
      actor: { keyId: ctx.caller.keyId, clientIp: ctx.clientIp, requestId: ctx.requestId },
    });
    return { HeartbeatRate: settings.heartbeatRateSeconds };
  },
});

/** A SourceServer item of DescribeSourceServers: integers where SMC has integers, the rest strings. */
const sourceItem = obj({
  SourceId: str(),
  Name: str(),
  Description: str(),
  State: str('Available | Unavailable (3 missed heartbeats).'),
  ErrorCode: str('SourceServer.Offline when Unavailable, else empty.'),
  Platform: str(),
  Architecture: str(),
  KernelLevel: int(),
  AgentVersion: str(),
  SystemDiskSize: int('GiB.'),
  ...wrapped('DataDisks', 'DataDisk', obj({ Index: int(), Path: str(), Size: int('GiB.') })).fields,
  SystemInfo: str('JSON object text.'),
  HeartbeatRate: int(),
  CreationTime: str(),
  AccessTokenId: str('smcd: the code it was last imported with.'),
  MachineId: str('smcd.'),
  Hostname: str('smcd.'),
  LastHeartbeatTime: str('smcd.'),
  FirstImportTime: str('smcd: audit.'),
  LastImportTime: str('smcd: audit.'),
  FirstClientIp: str('smcd: audit.'),
  LastClientIp: str('smcd: audit.'),
  ApprovalStatus: str('smcd: Pending (imported with a RequireApproval code, not yet approved) | Approved.'),
  ...tagsField,
});

function sourceView(s: Tagged<SourceRecord>, now: number, rate: number) {
  const { state, errorCode } = sourceState(s.lastHeartbeatAt, now, rate);
  return {
    SourceId: s.id,
    Name: s.name,
    Description: s.description,
    State: state,
    ErrorCode: errorCode,
    Platform: s.platform,
    Architecture: s.architecture,
    KernelLevel: s.kernelLevel ?? 0,
    AgentVersion: s.agentVersion,
    SystemDiskSize: s.systemDiskSize ?? 0,
    DataDisks: { DataDisk: s.dataDisks.map((d) => ({ Index: d.index, Path: d.path, Size: d.size })) },
    SystemInfo: s.systemInfo,
    HeartbeatRate: rate,
    CreationTime: formatTime(s.createdAt),
    AccessTokenId: s.accessTokenId,
    MachineId: s.machineId,
    Hostname: s.hostname,
    LastHeartbeatTime: formatTime(s.lastHeartbeatAt),
    // Audit: when and from where the machine imported itself.
    FirstImportTime: formatTime(s.firstImportAt),
    LastImportTime: formatTime(s.lastImportAt),
    FirstClientIp: s.firstClientIp,
    LastClientIp: s.lastClientIp,
    ApprovalStatus: s.approvalStatus,
    Tags: tagsView(s.tags),
  };
}

export const describeSourceServers = defineAction({
  name: 'DescribeSourceServers',
  origin: 'SMC',
  summary: 'Lists migration sources, newest first.',
  signedBy: 'access-key',
  params: {
    SourceId: list({ maxItems: 50, itemMax: 64, flag: 'id', doc: 'SourceId.N: only these sources.' }),
    Name: text({ max: 128, doc: 'Exact name.' }),
    State: oneOf(['Available', 'Unavailable'], { doc: 'Available | Unavailable.' }),
    AccessTokenId: text({ max: 64, flag: 'token-id', doc: 'smcd: sources imported with this code.' }),
    ApprovalStatus: oneOf(['Pending', 'Approved'], { doc: 'smcd: Pending | Approved.' }),
    Tag: tags({ doc: 'Tag.N.Key / Tag.N.Value: only sources having every one of these tags (no Value: any value).' }),
    PageNumber: pageNumber,
    PageSize: pageSize(10),
  },
  response: obj({ ...pageFields, ...wrapped('SourceServers', 'SourceServer', sourceItem).fields }),
  async handler(ctx, p) {
    const rate = ctx.services.settings.heartbeatRateSeconds;
    const { total, items } = await ctx.services.store.describeSources({
      ids: p.SourceId,
      name: p.Name || undefined,
      accessTokenId: p.AccessTokenId || undefined,
      state: p.State,
      approvalStatus: p.ApprovalStatus,
      tags: p.Tag,
      onlineSince: onlineSince(ctx.now, rate),
      ...pageOf(p),
    });
    return {
      TotalCount: total,
      PageNumber: p.PageNumber,
      PageSize: p.PageSize,
      SourceServers: { SourceServer: items.map((s) => sourceView(s, ctx.now, rate)) },
    };
  },
});

export const modifySourceServerAttribute = defineAction({
  name: 'ModifySourceServerAttribute',
  origin: 'SMC',
  summary: "Changes a source's name or description.",
  signedBy: 'access-key',
  params: { SourceId: sourceIdParam, Name: nameParam('New name (same rules as a code name).'), Description: descriptionParam('New description.') },
  response: obj({}),
  async handler(ctx, p) {
    const event = eventsOf(ctx)('SourceServer.Modify', p.SourceId, { Name: p.Name, Description: p.Description });
    if (!(await ctx.services.store.modifySource(p.SourceId, { name: p.Name, description: p.Description }, event))) throw errors.sourceNotFound();
    ctx.services.log.info(
      { audit: 'ModifySourceServerAttribute', requestId: ctx.requestId, keyId: ctx.caller.keyId, sourceId: p.SourceId },
      'source modified',
    );
    return {};
  },
});

export const deleteSourceServer = defineAction({
  name: 'DeleteSourceServer',
  origin: 'SMC',
  summary: 'Deletes a source. The import it used stays counted on its code.',
  signedBy: 'access-key',
  params: { SourceId: sourceIdParam },
  response: obj({}),
  async handler(ctx, p) {
    const event = eventsOf(ctx)('SourceServer.Delete', p.SourceId);
    if (!(await ctx.services.store.deleteSource(p.SourceId, event))) throw errors.sourceNotFound();
    ctx.services.log.info({ audit: 'DeleteSourceServer', requestId: ctx.requestId, keyId: ctx.caller.keyId, sourceId: p.SourceId }, 'source deleted');
    return {};
  },
});

const sourceIdsParam = list({ required: true, maxItems: 50, itemMax: 64, flag: 'id', doc: 'SourceId.N (1-50): the sources.' });

export const approveSourceServers = defineAction({
  name: 'ApproveSourceServers',
  origin: 'smcd',
  summary: 'Approves sources imported with a RequireApproval code: Pending becomes Approved. All or none: an unknown id changes nothing.',
  signedBy: 'access-key',
  params: { SourceId: sourceIdsParam },
  response: obj({}),
  async handler(ctx, p) {
    const event = eventsOf(ctx);
    const outcome = await ctx.services.store.approveSources(p.SourceId, (id) => event('SourceServer.Approve', id, { ApprovalStatus: 'Approved' }));
    const refused = batchRefusal(outcome, errors.sourceNotFound);
    if (refused) throw refused;
    ctx.services.log.info(
      { audit: 'ApproveSourceServers', requestId: ctx.requestId, keyId: ctx.caller.keyId, sourceIds: p.SourceId },
      'sources approved',
    );
    return {};
  },
});

export const rejectSourceServers = defineAction({
  name: 'RejectSourceServers',
  origin: 'smcd',
  summary: 'Rejects sources: deletes them and their tags; their source keys are refused from then on. All or none: an unknown id changes nothing.',
  signedBy: 'access-key',
  params: { SourceId: sourceIdsParam },
  response: obj({}),
  async handler(ctx, p) {
    const event = eventsOf(ctx);
    // The status the source had when it was rejected (a source may be rejected after approval).
    const outcome = await ctx.services.store.rejectSources(p.SourceId, (id, status) => event('SourceServer.Reject', id, { ApprovalStatus: status }));
    const refused = batchRefusal(outcome, errors.sourceNotFound);
    if (refused) throw refused;
    ctx.services.log.info(
      { audit: 'RejectSourceServers', requestId: ctx.requestId, keyId: ctx.caller.keyId, sourceIds: p.SourceId },
      'sources rejected',
    );
    return {};
  },
});
