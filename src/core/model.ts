/**
 * The shapes the pure engine works on. These are the contract between the edge (Durable Object,
 * KV, HTTP) and the engine: the edge builds them, the engine reads them and never touches a binding.
 * Times are epoch milliseconds and always passed in: the engine never reads the clock.
 */

export type Millis = number;

/** Channels Northstar knows; any other string is allowed for custom channels. */
export type Channel =
  | "web"
  | "app"
  | "email"
  | "sms"
  | "push"
  | "kiosk"
  | "pos"
  | "call_center"
  | (string & {});

/** One behavioural event as stored in a visitor's recent log (already validated and clock-corrected). */
export interface VisitorEvent {
  /** Client-supplied id, unique per visitor: replays with the same id are not counted twice. */
  readonly id: string;
  /** `page_view`, `product_view`, `add_to_cart`, `purchase`, `email_open`, `email_click`, `sms_click`, `search`, or custom. */
  readonly type: string;
  readonly ts: Millis;
  readonly channel: Channel;
  /** url, path, productId, category, tags (string[]), value, currency, ... */
  readonly props: Readonly<Record<string, unknown>>;
}

/** An intent score as stored: the value at `ts`. Decay is applied lazily on read. */
export interface IntentScore {
  readonly value: number;
  readonly ts: Millis;
}

export interface ChannelEngagement {
  readonly sends: number;
  readonly opens: number;
  readonly clicks: number;
  readonly lastAt: Millis | null;
  /** 24 counters of this channel's opens and clicks by hour of day (absent in state stored before it existed). */
  readonly hours?: readonly number[];
}

/**
 * The real-time state of one canonical visitor: what the VisitorDO returns in its single
 * decision-path RPC. Bounded in size by the object (recent events by count and age, counts by bucket).
 */
export interface VisitorState {
  readonly visitorId: string;
  readonly firstSeen: Millis | null;
  readonly lastSeen: Millis | null;
  readonly sessionCount: number;
  /** Recent events, oldest first. */
  readonly events: readonly VisitorEvent[];
  /**
   * Per event type the rules count (CompiledRules.countedTypes): hourly buckets `[bucketStart, count]`,
   * oldest first. Windowed counts read them for the part of a window the log has let go.
   */
  readonly counts: Readonly<Record<string, ReadonlyArray<readonly [Millis, number]>>>;
  /** The time of the latest event the log has let go (null or absent: none): `events` holds every event after it. */
  readonly prunedThrough?: Millis | null;
  /** Per event type: the time of the latest event of that type (for "silence" conditions). */
  readonly lastByType: Readonly<Record<string, Millis>>;
  /** Per intent dimension, undecayed. */
  readonly intent: Readonly<Record<string, IntentScore>>;
  /** Per channel: sends/opens/clicks, for channel preference. */
  readonly engagement: Readonly<Record<string, ChannelEngagement>>;
  /** 24 counters of engagement (opens, clicks, visits) by UTC hour of day; decisions read them in the person's zone. */
  readonly engagementHours: readonly number[];
  /** Per experience id: exposure times (recent, bounded), for frequency caps. */
  readonly exposures: Readonly<Record<string, readonly Millis[]>>;
  /** Per experiment id: the sticky variant id (or "holdout"). */
  readonly assignments: Readonly<Record<string, string>>;
  /** Per goal/event type: the time of the latest conversion. */
  readonly conversions: Readonly<Record<string, Millis>>;
}

/** Slow traits imported from CRM/warehouse, held in KV. Includes consent when the CRM knows it. */
export type Traits = Readonly<Record<string, unknown>>;

export type DeviceClass = "mobile" | "tablet" | "desktop" | "bot" | "unknown";

/** Everything about the current request the rules may look at. Built by the edge, per channel. */
export interface RequestContext {
  readonly channel: Channel;
  /** Full URL (web) or a deep link / screen id (apps); may be absent for outbound channels. */
  readonly url: string | null;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly referrer: string | null;
  readonly geo: {
    readonly country: string | null;
    readonly region: string | null;
    readonly city: string | null;
    readonly timezone: string | null;
  };
  readonly device: DeviceClass;
  readonly locale: string | null;
  readonly userAgent: string | null;
  readonly custom: Readonly<Record<string, unknown>>;
}

/** Consent per purpose (`personalization`, `measurement`, ...). Missing purpose = not granted unless config says otherwise. */
export type Consent = Readonly<Record<string, boolean>>;
