/**
 * The declared shape of a response: what the handler must return (ValueOf), and what the
 * API reference, the OpenAPI document, the typed client and the CLI's tables are made from.
 * Lists follow the RPC convention: `{ AccessTokens: { AccessToken: [...] } }`, so a list is
 * an object holding one array field (wrapped()).
 */
export interface StringShape {
  kind: 'string';
  doc?: string;
}
export interface IntegerShape {
  kind: 'integer';
  doc?: string;
}
export interface ObjectShape<F extends Readonly<Record<string, Shape>> = Readonly<Record<string, Shape>>> {
  kind: 'object';
  fields: F;
  doc?: string;
}
export interface ArrayShape<I extends Shape = Shape> {
  kind: 'array';
  item: I;
  doc?: string;
}
export type Shape = StringShape | IntegerShape | ObjectShape | ArrayShape;

export type ValueOf<S> = S extends StringShape
  ? string
  : S extends IntegerShape
    ? number
    : S extends ArrayShape<infer I>
      ? ValueOf<I>[]
      : S extends ObjectShape<infer F>
        ? { [K in keyof F]: ValueOf<F[K]> }
        : never;

export const str = (doc?: string): StringShape => ({ kind: 'string', doc });
export const int = (doc?: string): IntegerShape => ({ kind: 'integer', doc });
export const obj = <const F extends Readonly<Record<string, Shape>>>(fields: F, doc?: string): ObjectShape<F> => ({ kind: 'object', fields, doc });
/** `{ [outer]: { [inner]: item[] } }`, the RPC list convention. */
export const wrapped = <const O extends string, const I extends string, const S extends Shape>(outer: O, inner: I, item: S, doc?: string) =>
  obj({ [outer]: obj({ [inner]: { kind: 'array', item } as ArrayShape<S> }) } as { [K in O]: ObjectShape<{ [J in I]: ArrayShape<S> }> }, doc);

/** The item shape of a wrapped list field, e.g. listItem(response, 'AccessTokens'). */
export function listItemOf(shape: ObjectShape, field: string): ObjectShape | undefined {
  const outer = shape.fields[field];
  if (outer?.kind !== 'object') return undefined;
  const array = Object.values(outer.fields)[0];
  return array?.kind === 'array' && array.item.kind === 'object' ? array.item : undefined;
}
