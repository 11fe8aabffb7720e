import { newSourceId, newSourceKeyId, newSourceKeySecret } from '../crypto/ids.ts';
import { isValidSourceProof } from '../crypto/source-proof.ts';
import { importRefusal } from '../domain/access-token.ts';
import { onlineSince, sourceState } from '../domain/source-server.ts';
import { formatTime } from '../domain/time.ts';
import { errors } from '../rpc/errors.ts';
import type { DataDiskParam, ParamDecl } from '../rpc/params.ts';
import type { ImportRefusal, SourceRecord } from '../store/store.ts';
import { descriptionParam, nameParam, pageNumberParam, pageSizeParam } from './access-tokens.ts';
import type { ActionDef } from './types.ts';

const sourceIdParam: ParamDecl = { name: 'SourceId', type: 'string', required: true, max: 64, doc: 'The source server id.' };
const systemInfoParam: ParamDecl = {
  name: 'SystemInfo',
  type: 'json-object',
  maxBytes: 1024,
  doc: 'JSON object, at most 1 KiB: hostname, ipv4, ipv6, cores, memory, ...',
};

function refusalError(reason: ImportRefusal, clientIp: string, sourceId = ''): Error {
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

export const importSourceServer: ActionDef = {
  name: 'ImportSourceServer',
  origin: 'smcd',
  summary: 'Imports a migration source, signed with an activation code; each new MachineId uses one of its imports.',
  signedBy: 'access-token',
  params: [
    { name: 'MachineId', type: 'string', required: true, min: 1, max: 128, doc: 'Stable identifier of the machine.' },
    nameParam('Source name (default: Hostname).'),
    descriptionParam('Source description.'),
    { name: 'Hostname', type: 'string', max: 255, doc: 'Host name.' },
    { name: 'Platform', type: 'string', max: 128, doc: 'Operating system, e.g. "Debian GNU/Linux 12".' },
    { name: 'Architecture', type: 'string', max: 32, doc: 'x86_64, arm64, i386 or what the machine reports.' },
    { name: 'KernelLevel', type: 'integer', min: 0, max: 1000, doc: 'Kernel major version.' },
    { name: 'AgentVersion', type: 'string', max: 64, doc: 'Version of the importing agent.' },
    { name: 'SystemDiskSize', type: 'integer', min: 0, max: 1_048_576, doc: 'System disk size in GiB.' },
    { name: 'DataDisk', type: 'disks', maxItems: 64, doc: 'DataDisk.N.Index, DataDisk.N.Path, DataDisk.N.Size (GiB).' },
    systemInfoParam,
    { name: 'SourceKeyId', type: 'string', max: 64, doc: "smcd: the key id of this machine's source, to prove ownership on a re-import." },
    {
      name: 'SourceProof',
      type: 'string',
      max: 64,
      doc: 'smcd: lowercase hex HMAC-SHA256(source key secret, MachineId + "\\n" + SignatureNonce); required to re-import a MachineId that has a source.',
    },
  ],
  response: ['SourceId', 'SourceKeyId', 'SourceKeySecret', 'HeartbeatRate'],
  async handler(ctx, p) {
    const { store, box, log, metrics, settings } = ctx.services;
    const secret = newSourceKeySecret();
    const hostname = (p.Hostname as string | undefined) ?? '';
    const machineId = p.MachineId as string;
    const proofKeyId = p.SourceKeyId as string | undefined;
    const proof = p.SourceProof as string | undefined;
    const result = await store.importSource({
      tokenId: ctx.caller.keyId,
      machineId,
      now: ctx.now,
      clientIp: ctx.clientIp,
      refusal: (token) => importRefusal(token, ctx.now, ctx.clientIp),
      ownsSource: (source) =>
        proof !== undefined &&
        proofKeyId === source.keyId &&
        isValidSourceProof(proof, box.open(source.keySealed, source.keyId), machineId, ctx.signatureNonce),
      fields: {
        name: (p.Name as string | undefined) ?? null,
        description: (p.Description as string | undefined) ?? null,
        hostname,
        platform: (p.Platform as string | undefined) ?? '',
        architecture: (p.Architecture as string | undefined) ?? '',
        kernelLevel: (p.KernelLevel as number | undefined) ?? null,
        agentVersion: (p.AgentVersion as string | undefined) ?? '',
        systemDiskSize: (p.SystemDiskSize as number | undefined) ?? null,
        dataDisks: (p.DataDisk as DataDiskParam[] | undefined) ?? [],
        systemInfo: JSON.stringify(p.SystemInfo ?? {}),
      },
      newSourceId: newSourceId(),
      newKeyId: newSourceKeyId(),
      sealKey: (keyId) => box.seal(secret, keyId),
    });
    if (result.outcome === 'refused') {
      metrics.importRefusals.inc({ reason: result.reason });
      log.info(
        { audit: 'ImportSourceServer', requestId: ctx.requestId, accessTokenId: ctx.caller.keyId, clientIp: ctx.clientIp, refused: result.reason, sourceId: result.sourceId },
        'import refused',
      );
      throw refusalError(result.reason, ctx.clientIp, result.sourceId);
    }
    metrics.imports.inc({ slot: result.usedSlot ? 'used' : 'reimport' });
    log.info(
      { audit: 'ImportSourceServer', requestId: ctx.requestId, accessTokenId: ctx.caller.keyId, sourceId: result.sourceId, clientIp: ctx.clientIp, usedSlot: result.usedSlot, created: result.created },
      'source imported',
    );
    return {
      SourceId: result.sourceId,
      SourceKeyId: result.keyId,
      SourceKeySecret: secret,
      HeartbeatRate: settings.heartbeatRateSeconds,
    };
  },
};

export const reportSourceServerHeartbeat: ActionDef = {
  name: 'ReportSourceServerHeartbeat',
  origin: 'smcd',
  summary: "Reports that a source is alive, signed with that source's key.",
  signedBy: 'source-key',
  params: [
    sourceIdParam,
    systemInfoParam,
    { name: 'StatusInfo', type: 'string', max: 1024, doc: 'Free-form status text, at most 1024 characters.' },
  ],
  response: ['HeartbeatRate'],
  async handler(ctx, p) {
    const { store, settings } = ctx.services;
    const sourceId = p.SourceId as string;
    if (sourceId !== ctx.caller.sourceId) {
      if (!(await store.getSource(sourceId))) throw errors.sourceNotFound();
      throw errors.forbidden('ReportSourceServerHeartbeat on another source');
    }
    const systemInfo = p.SystemInfo === undefined ? undefined : JSON.stringify(p.SystemInfo);
    if (!(await store.recordHeartbeat(sourceId, ctx.now, systemInfo, p.StatusInfo as string | undefined))) throw errors.sourceNotFound();
    return { HeartbeatRate: settings.heartbeatRateSeconds };
  },
};

function sourceView(s: SourceRecord, now: number, rate: number) {
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
  };
}

export const describeSourceServers: ActionDef = {
  name: 'DescribeSourceServers',
  origin: 'SMC',
  summary: 'Lists migration sources, newest first.',
  signedBy: 'access-key',
  params: [
    { name: 'SourceId', type: 'list', maxItems: 50, itemMax: 64, doc: 'SourceId.N: only these sources.' },
    { name: 'Name', type: 'string', max: 128, doc: 'Exact name.' },
    { name: 'State', type: 'enum', values: ['Available', 'Unavailable'], doc: 'Available | Unavailable.' },
    { name: 'AccessTokenId', type: 'string', max: 64, doc: 'smcd: sources imported with this code.' },
    pageNumberParam,
    pageSizeParam(10),
  ],
  response: [
    'TotalCount',
    'PageNumber',
    'PageSize',
    'SourceServers.SourceServer[]: SourceId, Name, Description, State, ErrorCode, Platform, Architecture, KernelLevel, AgentVersion, SystemDiskSize, DataDisks.DataDisk[] (Index, Path, Size), SystemInfo, HeartbeatRate, CreationTime, AccessTokenId, MachineId, Hostname, LastHeartbeatTime, FirstImportTime, LastImportTime, FirstClientIp, LastClientIp',
  ],
  async handler(ctx, p) {
    const rate = ctx.services.settings.heartbeatRateSeconds;
    const pageNumber = p.PageNumber as number;
    const pageSize = p.PageSize as number;
    const { total, items } = await ctx.services.store.describeSources({
      ids: p.SourceId as string[] | undefined,
      name: (p.Name as string | undefined) || undefined,
      accessTokenId: (p.AccessTokenId as string | undefined) || undefined,
      state: p.State as 'Available' | 'Unavailable' | undefined,
      onlineSince: onlineSince(ctx.now, rate),
      offset: (pageNumber - 1) * pageSize,
      limit: pageSize,
    });
    return {
      TotalCount: total,
      PageNumber: pageNumber,
      PageSize: pageSize,
      SourceServers: { SourceServer: items.map((s) => sourceView(s, ctx.now, rate)) },
    };
  },
};

export const modifySourceServerAttribute: ActionDef = {
  name: 'ModifySourceServerAttribute',
  origin: 'SMC',
  summary: "Changes a source's name or description.",
  signedBy: 'access-key',
  params: [sourceIdParam, nameParam('New name (same rules as a code name).'), descriptionParam('New description.')],
  response: [],
  async handler(ctx, p) {
    const patch = { name: p.Name as string | undefined, description: p.Description as string | undefined };
    if (!(await ctx.services.store.modifySource(p.SourceId as string, patch))) throw errors.sourceNotFound();
    ctx.services.log.info({ audit: 'ModifySourceServerAttribute', requestId: ctx.requestId, keyId: ctx.caller.keyId, sourceId: p.SourceId }, 'source modified');
    return {};
  },
};

export const deleteSourceServer: ActionDef = {
  name: 'DeleteSourceServer',
  origin: 'SMC',
  summary: 'Deletes a source. The import it used stays counted on its code.',
  signedBy: 'access-key',
  params: [sourceIdParam],
  response: [],
  async handler(ctx, p) {
    if (!(await ctx.services.store.deleteSource(p.SourceId as string))) throw errors.sourceNotFound();
    ctx.services.log.info({ audit: 'DeleteSourceServer', requestId: ctx.requestId, keyId: ctx.caller.keyId, sourceId: p.SourceId }, 'source deleted');
    return {};
  },
};
