const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A lower-case UUIDv4, as zipball and object ids are made. */
export function isUuidV4(text: string): boolean {
  return UUID_V4.test(text);
}
