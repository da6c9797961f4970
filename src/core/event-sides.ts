import type { Millis, VisitorState } from "./model.ts";

/**
 * Which side of the relationship an event type is on. A newsletter the brand sends is not the
 * reader's visit, and a send yesterday does not make someone who left six days ago active:
 *
 * - visits: the person on the site or in the app (page_view, screen_view, …). Only visits start
 *   and count sessions, so only visits make someone a returning visitor.
 * - brand sends: what the brand did to the person (email_send, sms_send, push_send, …). Recorded and
 *   counted like any event, but never the person's activity.
 * - responses: what the person did with a message (email_open, email_click, …): activity, not a
 *   visit.
 * - any other type (purchase, a custom event): the person's activity, not a visit.
 *
 * The rules' `settings.eventSides` adds types to these lists; a type listed there leaves the list
 * it had by default.
 */

export interface EventSides {
  readonly visits: ReadonlySet<string>;
  readonly brandSends: ReadonlySet<string>;
  readonly responses: ReadonlySet<string>;
}

/** The lists a rules document may extend (settings.eventSides). */
export interface EventSidesSetting {
  readonly visits?: readonly string[] | undefined;
  readonly brandSends?: readonly string[] | undefined;
  readonly responses?: readonly string[] | undefined;
}

/** Browsing and buying on the web or in an app (a purchase is a visit: nobody buys without one). */
export const DEFAULT_VISITS = [
  "page_view",
  "screen_view",
  "app_open",
  "product_view",
  "search",
  "add_to_cart",
  "purchase",
] as const;

/** Outbound messages on their way to the person (the same names channel engagement counts as sends). */
export const DEFAULT_BRAND_SENDS = ["email", "sms", "push"].flatMap((channel) =>
  ["send", "sent", "delivered"].map((kind) => `${channel}_${kind}`),
);

/** The person answering a message. */
export const DEFAULT_RESPONSES = [
  "email_open",
  "email_click",
  "email_reply",
  "sms_open",
  "sms_click",
  "sms_reply",
  "push_open",
  "push_click",
] as const;

/**
 * The default lists with the rules' additions: each added type is taken out of the other lists.
 *
 * @example eventSides({ visits: ["kiosk_scan"] }).visits.has("kiosk_scan") // true
 */
export function eventSides(setting: EventSidesSetting = {}): EventSides {
  const visits = new Set<string>(DEFAULT_VISITS);
  const brandSends = new Set<string>(DEFAULT_BRAND_SENDS);
  const responses = new Set<string>(DEFAULT_RESPONSES);
  const lists = [
    [visits, setting.visits],
    [brandSends, setting.brandSends],
    [responses, setting.responses],
  ] as const;
  for (const [list, added] of lists) {
    for (const type of added ?? []) {
      for (const [other] of lists) other.delete(type);
      list.add(type);
    }
  }
  return { visits, brandSends, responses };
}

export const DEFAULT_EVENT_SIDES: EventSides = eventSides();

/**
 * When the person last did anything: their latest event of a type that is not a brand send. Read
 * from the per-type latest times rather than the stored `lastSeen`, so state written before brand
 * sends were told apart, or under other lists, reads right. A state that knows no per-type
 * times at all (a hand-built one, as the decide vectors pass) is taken at its `lastSeen`.
 */
export function lastActivity(state: VisitorState, sides: EventSides): Millis | null {
  let latest: Millis | null = null;
  let anyType = false;
  for (const type in state.lastByType) {
    if (!Object.hasOwn(state.lastByType, type)) continue;
    anyType = true;
    if (sides.brandSends.has(type)) continue;
    const at = state.lastByType[type]!;
    if (latest === null || at > latest) latest = at;
  }
  return anyType ? latest : state.lastSeen;
}

/** The person's latest visit before this event was applied (null when they never visited). */
export function lastVisit(state: VisitorState, sides: EventSides): Millis | null {
  let latest: Millis | null = null;
  for (const type of sides.visits) {
    const at = Object.hasOwn(state.lastByType, type) ? state.lastByType[type] : undefined;
    if (at !== undefined && (latest === null || at > latest)) latest = at;
  }
  return latest;
}
