import { existsSync, renameSync } from 'node:fs';
import pino from 'pino';
import { OPERATOR_ACTIONS } from '../actions/index.ts';
import { MASTER_KEY_CHECK, openData, rootCredentialsPath, StartupError, writeRootCredentials } from '../bootstrap.ts';
import { newAccessKeyId, newAccessKeySecret, newEventId, newRequestId } from '../crypto/ids.ts';
import { loadKeyring, masterKeyPath, newMasterKeyText, writeKeyFile } from '../crypto/master-key.ts';
import { eventMaker } from '../domain/audit-event.ts';
import { formatTime, systemClock } from '../domain/time.ts';
import { type Command, EXIT, UsageError } from './command.ts';
import { summaryOf } from './commands.ts';
import { databaseUrl, dataOptions } from './data-options.ts';
import { renderTable } from './output.ts';

/**
 * Local administration of access keys, directly on the store (it needs the data
 * directory and master key, which is what makes it an administrator's tool).
 */
export const keysCommand: Command = {
  name: 'keys',
  summary: summaryOf('keys'),
  usage: 'smcd keys create [--actions A,B|*] [--description D] | list | enable ID | disable ID | delete ID | rotate-root | rotate-master | reseal',
  example: 'smcd keys create --actions CreateAccessToken,ListAccessTokens --description "ci pipeline"',
  options: {
    ...dataOptions,
    actions: { type: 'string', description: `Allowed actions, comma-separated, or * for all (${OPERATOR_ACTIONS.join(', ')}).`, default: '*' },
    description: { type: 'string', description: 'What the key is for.', default: '' },
    output: { type: 'string', description: 'table or json.', default: 'table' },
  },
  async run(values, positionals) {
    const [sub, id = ''] = positionals;
    if (!sub || !['create', 'list', 'enable', 'disable', 'delete', 'rotate-root', 'rotate-master', 'reseal'].includes(sub))
      throw new UsageError('expected create, list, enable, disable, delete, rotate-root, rotate-master or reseal');
    if (sub === 'rotate-master') return rotateMaster(String(values['data-dir']), databaseUrl(values));
    if (['enable', 'disable', 'delete'].includes(sub) && !id) throw new UsageError(`keys ${sub} needs a key id`);
    const actions = String(values.actions)
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    const unknown = actions.filter((a) => a !== '*' && !OPERATOR_ACTIONS.includes(a));
    if (unknown.length) throw new UsageError(`unknown action(s): ${unknown.join(', ')}`);
    const json = values.output === 'json';
    const { store, box } = await openData(String(values['data-dir']), databaseUrl(values));
    // Audit events of this command name "cli" as the actor: it signs nothing, it holds the data directory.
    const event = eventMaker(newEventId, { keyId: 'cli', clientIp: '', requestId: newRequestId() }, systemClock());
    try {
      switch (sub) {
        case 'create': {
          const keyId = newAccessKeyId();
          const secret = newAccessKeySecret();
          await store.insertAccessKey(
            {
              id: keyId,
              secretSealed: box.seal(secret, keyId),
              description: String(values.description),
              allowedActions: actions,
              isRoot: false,
              enabled: true,
              createdAt: systemClock(),
            },
            event('AccessKey.Create', keyId, { Actions: actions.join(','), Description: String(values.description) }),
          );
          audit.info({ audit: 'keys.create', accessKeyId: keyId, actions }, 'access key created');
          if (json) process.stdout.write(`${JSON.stringify({ AccessKeyId: keyId, AccessKeySecret: secret, Actions: actions })}\n`);
          else
            process.stdout.write(
              `AccessKeyId:     ${keyId}\nAccessKeySecret: ${secret}\nActions:         ${actions.join(',')}\n` +
                'The secret is shown only now: store it safely.\n',
            );
          return EXIT.ok;
        }
        case 'rotate-root': {
          // Same key id, new secret: effective at once on every node (the row is read per request).
          const rootKey = await store.getRootAccessKey();
          if (!rootKey) throw new StartupError('this database has no root key yet: start the server once');
          const fromEnv = process.env.SMCD_ROOT_ACCESS_KEY_SECRET;
          if (fromEnv !== undefined && !/^[A-Za-z0-9]{30}$/.test(fromEnv))
            throw new StartupError('SMCD_ROOT_ACCESS_KEY_SECRET must be 30 letters or digits.');
          const secret = fromEnv ?? newAccessKeySecret();
          await store.setAccessKeySecret(rootKey.id, box.seal(secret, rootKey.id));
          audit.info({ audit: 'keys.rotate-root', accessKeyId: rootKey.id }, 'root key secret rotated');
          if (fromEnv) {
            process.stdout.write(`root key ${rootKey.id} now uses the secret in SMCD_ROOT_ACCESS_KEY_SECRET; give every node the same value.\n`);
          } else {
            const path = rootCredentialsPath(String(values['data-dir']));
            writeRootCredentials(String(values['data-dir']), { AccessKeyId: rootKey.id, AccessKeySecret: secret });
            process.stdout.write(`root key ${rootKey.id} has a new secret, written to ${path}; the old secret no longer works.\n`);
          }
          return EXIT.ok;
        }
        case 'reseal': {
          // Re-seals whatever is still under a non-primary key (after every node reloaded the ring).
          const n = await store.resealSecrets((sealed, recordId) => box.reseal(sealed, recordId));
          await store.setMeta(MASTER_KEY_CHECK, box.fingerprint);
          audit.info({ audit: 'keys.reseal', resealed: n }, 'secrets re-sealed');
          process.stdout.write(`re-sealed ${n} secrets under the current master key\n`);
          return EXIT.ok;
        }
        case 'list': {
          const keys = await store.listAccessKeys();
          const rows = keys.map((k) => ({
            AccessKeyId: k.id,
            Status: k.enabled ? 'Enabled' : 'Disabled',
            Root: k.isRoot,
            Actions: k.allowedActions.join(','),
            Description: k.description,
            CreationTime: formatTime(k.createdAt),
          }));
          if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
          else
            process.stdout.write(
              renderTable(
                [
                  { header: 'ACCESS KEY ID', value: (r) => r.AccessKeyId },
                  { header: 'STATUS', value: (r) => r.Status },
                  { header: 'ROOT', value: (r) => (r.Root ? 'root' : '-') },
                  { header: 'ACTIONS', value: (r) => r.Actions },
                  { header: 'CREATED', value: (r) => r.CreationTime },
                  { header: 'DESCRIPTION', value: (r) => r.Description || '-' },
                ],
                rows,
              ),
            );
          return EXIT.ok;
        }
        default: {
          const key = await store.getAccessKey(id);
          if (!key) {
            process.stderr.write(`InvalidAccessKeyId.NotFound: no access key ${id}\n`);
            return EXIT.failed;
          }
          if (key.isRoot && sub !== 'enable') {
            process.stderr.write('Forbidden: the root key cannot be disabled or deleted; rotate it instead (see SECURITY.md).\n');
            return EXIT.failed;
          }
          if (sub === 'delete') await store.deleteAccessKey(id, event('AccessKey.Delete', id));
          else
            await store.setAccessKeyEnabled(
              id,
              sub === 'enable',
              event(sub === 'enable' ? 'AccessKey.Enable' : 'AccessKey.Disable', id, { Enabled: sub === 'enable' }),
            );
          audit.info({ audit: `keys.${sub}`, accessKeyId: id }, `access key ${sub}d`);
          process.stdout.write(`${id} ${sub}d\n`);
          return EXIT.ok;
        }
      }
    } finally {
      await store.close();
    }
  },
};

/**
 * Master key rotation without downtime for readers (SECURITY.md):
 * 1. the next key exists (SMCD_MASTER_KEY_NEXT, or <data-dir>/master.key.next, generated here);
 * 2. every stored secret is re-sealed under it in one transaction, and the database's key
 *    fingerprint moves to it;
 * 3. with key files, master.key becomes master.key.previous and master.key.next becomes
 *    master.key. Running servers meet a value under a key id they do not hold, reload the
 *    ring from the files and go on; with environment keys, the operator swaps the variables
 *    (SMCD_MASTER_KEY=<next>, SMCD_MASTER_KEY_PREVIOUS=<old>) with a rolling restart.
 */
/** Audit lines for key changes go to stderr as JSON, like the server's; stdout stays for results. */
const audit = pino({ base: { service: 'smcd-keys' } }, pino.destination(2));

async function rotateMaster(dataDir: string, url: string): Promise<number> {
  const fromEnv = Boolean(process.env.SMCD_MASTER_KEY);
  if (fromEnv && !process.env.SMCD_MASTER_KEY_NEXT)
    throw new StartupError('With SMCD_MASTER_KEY set, put the new key in SMCD_MASTER_KEY_NEXT (on every node first), then run rotate-master.');
  const nextPath = masterKeyPath(dataDir, 'next');
  if (!fromEnv && !existsSync(nextPath)) writeKeyFile(nextPath, newMasterKeyText());
  const { store, box } = await openData(dataDir, url);
  try {
    // The ring's first other key is the next one: make it the primary, keeping the current key to open what is sealed under it.
    const ring = loadKeyring(dataDir);
    const [next, ...older] = ring.others;
    if (!next) throw new StartupError('no next master key was found to rotate to');
    box.setKeys(next, [ring.primary, ...older]);
    const n = await store.resealSecrets((sealed, recordId) => box.reseal(sealed, recordId));
    await store.setMeta(MASTER_KEY_CHECK, box.fingerprint);
    audit.info({ audit: 'keys.rotate-master', resealed: n }, 'master key rotated');
    if (!fromEnv) {
      renameSync(masterKeyPath(dataDir), masterKeyPath(dataDir, 'previous'));
      renameSync(nextPath, masterKeyPath(dataDir));
      process.stdout.write(
        `re-sealed ${n} secrets under the new master key (${masterKeyPath(dataDir)}); the old key is kept in ` +
          `${masterKeyPath(dataDir, 'previous')}.\nRunning servers pick the new key up by themselves. After a minute, run ` +
          '"smcd keys reseal", then delete master.key.previous.\n',
      );
    } else {
      process.stdout.write(
        `re-sealed ${n} secrets under SMCD_MASTER_KEY_NEXT.\nOn every node, set SMCD_MASTER_KEY to the new key and ` +
          'SMCD_MASTER_KEY_PREVIOUS to the old one (rolling restart), run "smcd keys reseal", then drop SMCD_MASTER_KEY_PREVIOUS.\n',
      );
    }
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
