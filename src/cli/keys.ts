import { OPERATOR_ACTIONS } from '../actions/index.ts';
import { openData } from '../bootstrap.ts';
import { newAccessKeyId, newAccessKeySecret } from '../crypto/ids.ts';
import { formatTime, systemClock } from '../domain/time.ts';
import { type Command, EXIT, UsageError } from './command.ts';
import { dataOptions, databaseUrl } from './data-options.ts';

/**
 * Local administration of access keys, directly on the store (it needs the data
 * directory and master key, which is what makes it an administrator's tool).
 */
export const keysCommand: Command = {
  name: 'keys',
  summary: 'Manage access keys on the local store: create, list, enable, disable, delete.',
  usage: 'smcd keys create [--actions A,B|*] [--description D] | list | enable ID | disable ID | delete ID',
  example: 'smcd keys create --actions CreateAccessToken,ListAccessTokens --description "ci pipeline"',
  options: {
    ...dataOptions,
    actions: { type: 'string', description: `Allowed actions, comma-separated, or * for all (${OPERATOR_ACTIONS.join(', ')}).`, default: '*' },
    description: { type: 'string', description: 'What the key is for.', default: '' },
    output: { type: 'string', description: 'table or json.', default: 'table' },
  },
  async run(values, positionals) {
    const [sub, id] = positionals;
    if (!sub || !['create', 'list', 'enable', 'disable', 'delete'].includes(sub)) throw new UsageError('expected create, list, enable, disable or delete');
    if (['enable', 'disable', 'delete'].includes(sub) && !id) throw new UsageError(`keys ${sub} needs a key id`);
    const actions = String(values.actions)
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    const unknown = actions.filter((a) => a !== '*' && !OPERATOR_ACTIONS.includes(a));
    if (unknown.length) throw new UsageError(`unknown action(s): ${unknown.join(', ')}`);
    const json = values.output === 'json';
    const { store, box } = await openData(String(values['data-dir']), databaseUrl(values));
    try {
      switch (sub) {
        case 'create': {
          const keyId = newAccessKeyId();
          const secret = newAccessKeySecret();
          await store.insertAccessKey({
            id: keyId,
            secretSealed: box.seal(secret, keyId),
            description: String(values.description),
            allowedActions: actions,
            isRoot: false,
            enabled: true,
            createdAt: systemClock(),
          });
          if (json) process.stdout.write(`${JSON.stringify({ AccessKeyId: keyId, AccessKeySecret: secret, Actions: actions })}\n`);
          else
            process.stdout.write(
              `AccessKeyId:     ${keyId}\nAccessKeySecret: ${secret}\nActions:         ${actions.join(',')}\n` +
                'The secret is shown only now: store it safely.\n',
            );
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
          else for (const r of rows) process.stdout.write(`${r.AccessKeyId}  ${r.Status.padEnd(8)}  ${r.Root ? 'root ' : '     '} ${r.Actions}  ${r.Description}\n`);
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
          if (sub === 'delete') await store.deleteAccessKey(id);
          else await store.setAccessKeyEnabled(id, sub === 'enable');
          process.stdout.write(`${id} ${sub}d\n`);
          return EXIT.ok;
        }
      }
    } finally {
      await store.close();
    }
  },
};
