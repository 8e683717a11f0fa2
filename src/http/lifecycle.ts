import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";

/** A download whose body is being sent. */
export interface ActiveDownload {
  requestId: string;
  /** Short zipball id, as logged. */
  zipball: string;
  /** Bytes handed to the socket so far. */
  sent: number;
  /** Bytes the response promised (undefined when chunked). */
  expected: number | undefined;
  /** Aborts the transfer (the client sees a cut connection, never a short zip). */
  cut(reason: Error): void;
}

/** A reserved download slot: given back once, however the download ends. */
export interface Slot {
  /** Starts counting `download` as in flight (for the drain at shutdown). */
  track(download: ActiveDownload): void;
  release(): void;
}

/** Seconds a refused client is told to wait (`Retry-After`). */
const RETRY_AFTER_S = 5;

/**
 * What the process is doing as a whole: serving or draining, and the downloads in flight.
 * Slots are reserved synchronously, so a burst of requests in one turn of the event loop
 * cannot overrun the limit; every slot held is a body being produced (reads, read-ahead
 * buffers, socket buffers), which is what gives a process a memory ceiling.
 */
export class Lifecycle {
  readonly #active = new Set<ActiveDownload>();
  readonly #perClient = new Map<string, number>();
  #reserved = 0;
  /** Requests being answered, downloads included. */
  #requests = 0;
  #draining = false;
  #idle: Array<() => void> = [];

  /**
   * @param maxDownloads ZIPGATE_MAX_DOWNLOADS: bodies produced at once by this process.
   * @param maxPerClient ZIPGATE_MAX_DOWNLOADS_PER_CLIENT: of those, at once for one client address.
   */
  constructor(
    readonly maxDownloads: number,
    readonly maxPerClient = Number.POSITIVE_INFINITY,
  ) {}

  get draining(): boolean {
    return this.#draining;
  }

  /** Downloads holding a slot now. */
  get inFlight(): number {
    return this.#reserved;
  }

  /** A request came in; `requestEnded` once its response closed. */
  requestStarted(): void {
    this.#requests += 1;
  }

  requestEnded(): void {
    this.#requests -= 1;
    this.#wake();
  }

  #wake(): void {
    if (this.#requests <= 0 && this.#reserved === 0) for (const wake of this.#idle.splice(0)) wake();
  }

  /**
   * Reserves a download slot, or refuses with 503 and `Retry-After` (also while draining);
   * for a `client` address already at its own limit, 429 with `Retry-After`.
   */
  admit(client?: string): Slot {
    if (this.#draining) throw shuttingDown();
    if (this.#reserved >= this.maxDownloads) {
      throw new GatewayError(503, "too_many_downloads_in_flight", `this gateway is serving its limit of ${this.maxDownloads} downloads; retry shortly`, {
        headers: { "Retry-After": String(RETRY_AFTER_S) },
      });
    }
    if (client !== undefined && (this.#perClient.get(client) ?? 0) >= this.maxPerClient) {
      throw new GatewayError(429, "too_many_downloads_from_client", `at most ${this.maxPerClient} downloads may run at once from one address`, {
        headers: { "Retry-After": String(RETRY_AFTER_S) },
      });
    }
    this.#reserved += 1;
    if (client !== undefined) this.#perClient.set(client, (this.#perClient.get(client) ?? 0) + 1);
    let tracked: ActiveDownload | undefined;
    let released = false;
    return {
      track: (download) => {
        if (released) return;
        tracked = download;
        this.#active.add(download);
      },
      release: () => {
        if (released) return;
        released = true;
        this.#reserved -= 1;
        if (client !== undefined) {
          const n = (this.#perClient.get(client) ?? 1) - 1;
          if (n > 0) this.#perClient.set(client, n);
          else this.#perClient.delete(client);
        }
        if (tracked) this.#active.delete(tracked);
        this.#wake();
      },
    };
  }

  /**
   * Stops admitting work and waits up to `timeoutMs` for every request in flight (downloads
   * and the rest); then cuts the downloads still running, logging each with its request id
   * and bytes sent. True when everything finished.
   */
  async drain(timeoutMs: number, logger: Logger): Promise<boolean> {
    this.#draining = true;
    if (this.#reserved > 0 || this.#requests > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#idle.push(resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    if (this.#reserved === 0 && this.#requests <= 0) return true;
    if (this.#requests > this.#reserved) logger.warn("requests cut at shutdown", { requests: this.#requests - this.#reserved });
    for (const d of [...this.#active]) {
      logger.warn("download cut at shutdown", { request_id: d.requestId, zipball: d.zipball, bytes_sent: d.sent, bytes_expected: d.expected });
      d.cut(new Error("the gateway is shutting down"));
    }
    return false;
  }
}

export function shuttingDown(): GatewayError {
  return new GatewayError(503, "shutting_down", "this gateway is shutting down; retry on another", {
    headers: { "Retry-After": "1", Connection: "close" },
  });
}
