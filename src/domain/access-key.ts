/** An operator's credential: `LTAI` + 20 alphanumerics, with the actions it may call. */
export interface AccessKeyRecord {
  id: string;
  /** The secret, sealed under the master key (crypto/secret-box.ts); never plain text. */
  secretSealed: string;
  description: string;
  /** Actions this key may call; `*` means every operator action. */
  allowedActions: string[];
  isRoot: boolean;
  enabled: boolean;
  createdAt: number;
}

/** Whether the key may call `action` (the root key and `*` keys may call every operator action). */
export const keyAllows = (key: Pick<AccessKeyRecord, 'allowedActions'>, action: string): boolean =>
  key.allowedActions.includes('*') || key.allowedActions.includes(action);
