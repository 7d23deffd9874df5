// @ts-check
/**
 * A small client for Tidings that wraps an unchanged socket.io-client.
 *
 * What it adds to a bare socket (docs/protocol.md, delivery across
 * reconnects):
 * - the credentials go in the handshake `auth`, built afresh by a function
 *   on every (re)connect, so a dropped connection re-authenticates by itself;
 * - that `auth` carries `since`, the last `seq` this client saw, so the
 *   server replays what was missed;
 * - a durable push (one whose second argument holds a numeric `seq`) at or
 *   below the last `seq` seen is a duplicate and is dropped;
 * - `resync` (the server no longer holds what we missed) reaches listeners
 *   so the app can refetch over GraphQL.
 *
 * socket.io-client is passed in (`io`), not imported, so the same file runs
 * in a browser (the `io` global of socket.io.min.js) and in Node.
 *
 * @module tidings-client
 */

/**
 * @typedef {{ id: string, secretkey: string }} Credentials
 * @typedef {{ seq: number, replayed?: boolean }} PushMeta
 *   The second argument of a durable push; `replayed` when it is sent again
 *   after a reconnect.
 * @typedef {(payload: any, meta: PushMeta | undefined) => void} Listener
 */

/**
 * @typedef {object} ClientOptions
 * @property {(url?: string, options?: object) => any} io socket.io-client's `io`
 * @property {string} [url] the server; omitted: the page's own origin
 * @property {Credentials} credentials
 * @property {number} [since] last `seq` seen by an earlier session (e.g. kept in storage)
 * @property {object} [socketOptions] passed on to `io` (e.g. `transports`)
 */

export class TidingsClient {
  /** @param {ClientOptions} options */
  constructor(options) {
    if (typeof options?.io !== "function") {
      throw new TypeError("TidingsClient needs socket.io-client's io function");
    }
    const { id, secretkey } = options.credentials ?? {};
    if (typeof id !== "string" || typeof secretkey !== "string") {
      throw new TypeError("credentials must be { id, secretkey } strings");
    }
    /** @type {Credentials} */
    this.credentials = { id, secretkey };
    /** The last `seq` seen; `undefined` until the server sent one. */
    this.lastSeq = Number.isSafeInteger(options.since) ? options.since : undefined;
    /** Durable pushes dropped as duplicates (for tests and diagnostics). */
    this.duplicatesDropped = 0;
    /** @type {Map<string, Set<Listener>>} */
    this.listeners = new Map();
    const url = options.url;
    const socketOptions = {
      ...options.socketOptions,
      // A function: socket.io-client calls it before every connect, so each
      // reconnect sends the current `since`.
      auth: (/** @type {(auth: object) => void} */ send) => send(this.handshakeAuth()),
    };
    this.socket = url === undefined ? options.io(socketOptions) : options.io(url, socketOptions);
    this.socket.onAny((/** @type {string} */ event, /** @type {any[]} */ ...args) =>
      this.receive(event, args),
    );
  }

  /** What the handshake carries: credentials, and `since` once known. */
  handshakeAuth() {
    return this.lastSeq === undefined
      ? { ...this.credentials }
      : { ...this.credentials, since: this.lastSeq };
  }

  /**
   * Listens to a server event. Durable pushes call `listener(payload, meta)`
   * once per `seq`; other events call `listener(payload)`.
   * @param {string} event
   * @param {Listener} listener
   * @returns {() => void} stops listening
   */
  on(event, listener) {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Emits to the server and resolves with its acknowledgement, or rejects
   * after `timeoutMs` without one.
   * @param {string} event
   * @param {any} payload
   * @param {number} [timeoutMs]
   */
  request(event, payload, timeoutMs = 5000) {
    return this.socket.timeout(timeoutMs).emitWithAck(event, payload);
  }

  /** Emits without waiting for an answer. */
  emit(/** @type {string} */ event, /** @type {any} */ payload) {
    this.socket.emit(event, payload);
  }

  close() {
    this.socket.disconnect();
  }

  /**
   * @param {string} event
   * @param {any[]} args
   */
  receive(event, args) {
    const [payload, meta] = args;
    const seq = meta !== null && typeof meta === "object" ? meta.seq : undefined;
    if (Number.isSafeInteger(seq)) {
      if (this.lastSeq !== undefined && seq <= this.lastSeq) {
        this.duplicatesDropped += 1;
        return;
      }
      this.lastSeq = seq;
      this.dispatch(event, payload, { seq, replayed: meta.replayed === true });
      return;
    }
    this.dispatch(event, payload, undefined);
  }

  /**
   * @param {string} event
   * @param {any} payload
   * @param {PushMeta | undefined} meta
   */
  dispatch(event, payload, meta) {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        listener(payload, meta);
      } catch (err) {
        // One faulty listener must not starve the others.
        console.error(`tidings-client: a "${event}" listener threw`, err);
      }
    }
  }
}

/**
 * Connects and resolves once the server answered `auth` (true or false).
 * @param {ClientOptions} options
 * @returns {Promise<{ client: TidingsClient, authenticated: boolean }>}
 */
export function connect(options) {
  const client = new TidingsClient(options);
  return new Promise((resolve) => {
    const stop = client.on("auth", (ok) => {
      stop();
      resolve({ client, authenticated: ok === true });
    });
  });
}
