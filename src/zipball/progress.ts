import { zipballKey } from "../manifest/store.js";
import type { Storage } from "../storage/types.js";

/** The state of a download, as Box reports it. */
export interface DownloadProgress {
  state: "in_progress" | "succeeded" | "failed";
  total_file_count: number;
  downloaded_file_count: number;
  skipped_file_count: number;
  skipped_folder_count: number;
  started_at: string;
  updated_at: string;
  /** Key id of the zipball's owner: only it may read the status. */
  owner: string;
  /** Pinned entries left out at the start (deleted or unreadable by then). */
  skipped: number[];
  /** Who claimed the URL (a digest of client address and user agent): only they may come back, briefly. */
  claimant?: string | undefined;
  /** The first body was a byte range (a probe): its claimant may still fetch the whole. */
  claimed_by_range?: boolean | undefined;
}

/**
 * Download progress kept in the store next to the zipball, written at the
 * start, at intervals and at the end, so a status request on any replica
 * sees it. The first write is a claim: only one download can start it.
 */
export class ProgressStore {
  constructor(private readonly storage: Storage) {}

  async get(id: string): Promise<DownloadProgress | null> {
    const body = await this.storage.get(zipballKey(id, "progress"));
    return body ? (JSON.parse(body.toString("utf8")) as DownloadProgress) : null;
  }

  /** Writes the first progress record; false when a download already started. */
  claim(id: string, progress: DownloadProgress): Promise<boolean> {
    return this.storage.put(zipballKey(id, "progress"), JSON.stringify(progress), { ifAbsent: true });
  }

  async put(id: string, progress: DownloadProgress): Promise<void> {
    await this.storage.put(zipballKey(id, "progress"), JSON.stringify(progress));
  }
}
