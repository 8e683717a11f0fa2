import { createHash, randomUUID } from "node:crypto";
import { GatewayError } from "../errors.js";
import { RESERVED_PREFIX } from "../storage/keys.js";
import type { Storage } from "../storage/types.js";
import { isUuidV4 } from "../util/uuid.js";

const ID_PREFIX = `${RESERVED_PREFIX}ids/`;
const PATH_PREFIX = `${RESERVED_PREFIX}paths/`;

/**
 * Object ids kept in the store itself, so every replica resolves an id the
 * same way: `ids/<id>` holds the key, `paths/<sha256(key)>` the id, which
 * makes registering the same path twice return the same id.
 */
export class IdIndex {
  constructor(private readonly storage: Storage) {}

  async register(key: string): Promise<{ id: string; created: boolean }> {
    const pathKey = PATH_PREFIX + createHash("sha256").update(key).digest("hex");
    const existing = await this.#readId(pathKey);
    if (existing) return { id: existing, created: false };
    const id = randomUUID();
    await this.storage.put(ID_PREFIX + id, JSON.stringify({ key }));
    if (await this.storage.put(pathKey, JSON.stringify({ id }), { ifAbsent: true })) return { id, created: true };
    // Another request registered the same path first: use its id.
    await this.storage.delete(ID_PREFIX + id);
    return { id: (await this.#readId(pathKey)) ?? id, created: false };
  }

  /** The key an id stands for, or undefined. */
  async resolve(id: string): Promise<string | undefined> {
    if (!isUuidV4(id)) throw new GatewayError(400, "invalid_id", `"${id}" is not a UUIDv4`);
    const body = await this.storage.get(ID_PREFIX + id);
    return body ? (JSON.parse(body.toString("utf8")) as { key: string }).key : undefined;
  }

  async #readId(pathKey: string): Promise<string | undefined> {
    const body = await this.storage.get(pathKey);
    return body ? (JSON.parse(body.toString("utf8")) as { id: string }).id : undefined;
  }
}
