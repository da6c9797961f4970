import type { VisitorEvent, VisitorState } from "./model.ts";
import { HOUR_MS, own } from "./visitor-state.ts";

/**
 * A filter a plan can count by: the event's own prop `key` is `value` (as the `eq` operator compares:
 * a string, number or boolean, never NaN). The ten segments' "product_view in 7d where category = X"
 * are then one walk over the log, each event's category looked up once, not ten walks.
 */
export interface PropEquality {
  readonly key: string;
  readonly value: string | number | boolean;
}

/** The windows counted for one type (and one prop value when filtered), shortest first. */
interface WindowSet {
  readonly index: number;
  readonly windows: readonly number[];
  /** Where its buckets start in a tally's cells. */
  readonly offset: number;
  /** Unfiltered: the part of its windows the log has let go is read from the hourly counters. */
  readonly counted: boolean;
  /** The walker that fills it. */
  readonly walker: number;
}

/**
 * One walk back through the log: the unfiltered counts of one type (`key` null), or the counts of
 * one type filtered on one prop, every value at once (`byValue`).
 */
interface Walker {
  readonly index: number;
  readonly type: string;
  readonly key: string | null;
  readonly plain: WindowSet | null;
  readonly byValue: ReadonlyMap<unknown, WindowSet> | null;
  readonly sets: readonly WindowSet[];
}

/** The plan laid out for counting: built once per rules version, again only if a slot is added. */
interface Layout {
  readonly walkers: readonly Walker[];
  readonly slotSet: readonly WindowSet[];
  readonly slotWindow: readonly number[];
  readonly sets: number;
  readonly buckets: number;
  /** A tally's cells, all zero: copied at the start of each decision, one allocation of the right size. */
  readonly zeros: readonly number[];
}

/**
 * The windowed counts a rules version reads (`countWithin` and `rate`, and a `countWithin` whose
 * `where` is an equality on one event prop), known once per version: each distinct (event type,
 * window, filter) gets a slot when its condition is compiled. A decision (a tally) walks the log back
 * once per type, filling every window of that type in the same walk, and once per filtered prop of
 * a type, filling every value's windows (the ten segments' categories) in the same walk; each walk
 * goes only as far as the longest of its windows read so far.
 */
export class CountPlan {
  readonly #types: string[] = [];
  readonly #windows: number[] = [];
  readonly #filters: (PropEquality | null)[] = [];
  #layout: Layout | null = null;

  /** The slot of "events of `type` in the last `windowMs`" (those `where` accepts); the same slot for the same. */
  slot(type: string, windowMs: number, where: PropEquality | null = null): number {
    for (let s = 0; s < this.#types.length; s++) {
      const filter = this.#filters[s]!;
      if (
        this.#types[s] === type &&
        this.#windows[s] === windowMs &&
        (filter === null
          ? where === null
          : where !== null && filter.key === where.key && filter.value === where.value)
      )
        return s;
    }
    this.#types.push(type);
    this.#windows.push(windowMs);
    this.#filters.push(where);
    this.#layout = null;
    return this.#types.length - 1;
  }

  /** How many slots there are: a decision keeps one count per slot. */
  get size(): number {
    return this.#types.length;
  }

  /** A decision's counts at `now`, none worked out yet. */
  tally(state: VisitorState | null, now: number): CountTally {
    this.#layout ??= this.#lay();
    return new CountTally(this, this.#layout, state, now);
  }

  #lay(): Layout {
    // Slots grouped by walk: (type, null) unfiltered, (type, key) filtered, then by value.
    const groups = new Map<string, { type: string; key: string | null; byValue: Map<unknown, number[]> }>();
    for (let s = 0; s < this.#types.length; s++) {
      const type = this.#types[s]!;
      const filter = this.#filters[s]!;
      const name = JSON.stringify([type, filter?.key ?? null]);
      let group = groups.get(name);
      if (!group) {
        group = { type, key: filter?.key ?? null, byValue: new Map() };
        groups.set(name, group);
      }
      const value = filter === null ? null : filter.value;
      const slots = group.byValue.get(value);
      if (slots) slots.push(s);
      else group.byValue.set(value, [s]);
    }
    const slotSet: WindowSet[] = [];
    const slotWindow: number[] = [];
    let sets = 0;
    let buckets = 0;
    const walkers: Walker[] = [];
    for (const { type, key, byValue } of groups.values()) {
      const walker = walkers.length;
      const setOf = (slots: readonly number[]): WindowSet => {
        const windows = [...new Set(slots.map((s) => this.#windows[s]!))].sort((a, b) => a - b);
        const set: WindowSet = { index: sets++, windows, offset: buckets, counted: key === null, walker };
        buckets += windows.length;
        for (const s of slots) {
          slotSet[s] = set;
          slotWindow[s] = windows.indexOf(this.#windows[s]!);
        }
        return set;
      };
      const valueSets = new Map([...byValue].map(([value, slots]) => [value, setOf(slots)]));
      walkers.push({
        index: walker,
        type,
        key,
        plain: key === null ? valueSets.get(null)! : null,
        byValue: key === null ? null : valueSets,
        sets: [...valueSets.values()],
      });
    }
    // Slots, buckets, each set's pointer and open bucket, and the discard cell (CountTally).
    const zeros: number[] = [];
    for (let c = 0; c < this.#types.length + buckets + 2 * sets + 1; c++) zeros.push(0);
    return { walkers, slotSet, slotWindow, sets, buckets, zeros };
  }
}

/** Where one walk has got to in a decision. */
interface Walk {
  /** The next entry to read, walking back, and the earliest time read so far. */
  next: number;
  earliest: number;
  /** The latest start among its open windows (and the cut): crossing it moves its sets on. */
  boundary: number;
  /** Unfiltered: still after the cut, where the log holds every event. */
  open: boolean;
  /** Unfiltered: the type's logged events in (through, end of the hour holding it]. */
  tail: number;
}

/**
 * One decision's planned counts. Each walk reads the log (oldest first) back from the newest entry,
 * resumed when a longer window is read; each entry of its type (and prop value) goes into the bucket
 * of the shortest of its windows that holds it, so a window's count is the sum of its buckets and
 * those of the shorter windows. Exactly what a walk per count reads (countInWindow, countSince): the
 * walk of a window stops at the first entry at or before its start, so an entry counts for a window
 * when no entry at or after it (in the log's order) is at or before the start; malformed entries are
 * skipped; events after `now` are not counted; an unfiltered window reaching past `prunedThrough`
 * reads the log after it and the hourly counters up to it (record 21).
 */
export class CountTally {
  readonly #plan: CountPlan;
  readonly #layout: Layout;
  readonly #state: VisitorState | null;
  readonly #now: number;
  readonly #events: readonly unknown[];
  /** Where the log has been let go (null: nowhere), and the end of the hour holding it. */
  readonly #through: number | null;
  readonly #throughHourEnd: number;
  /**
   * One array for the decision, zeroed: each slot's count + 1 (0: not worked out yet), each set's
   * buckets, each set's shortest open window, each set's open bucket (or the discard cell).
   */
  readonly #cells: number[];
  readonly #bucketsAt: number;
  readonly #pointersAt: number;
  readonly #currentAt: number;
  readonly #discard: number;
  /** Each walker's walk, begun at its first read. */
  readonly #walks: (Walk | undefined)[] = [];

  constructor(plan: CountPlan, layout: Layout, state: VisitorState | null, now: number) {
    this.#plan = plan;
    this.#layout = layout;
    this.#state = state;
    this.#now = now;
    const events: unknown = state?.events;
    this.#events = Array.isArray(events) ? events : [];
    const through: unknown = state?.prunedThrough;
    this.#through = typeof through === "number" && Number.isFinite(through) ? through : null;
    this.#throughHourEnd =
      this.#through === null
        ? Number.NEGATIVE_INFINITY
        : Math.floor(this.#through / HOUR_MS) * HOUR_MS + HOUR_MS - 1;
    this.#bucketsAt = plan.size;
    this.#pointersAt = this.#bucketsAt + layout.buckets;
    this.#currentAt = this.#pointersAt + layout.sets;
    this.#discard = this.#currentAt + layout.sets;
    // A plain array (allocating a typed one costs more than a decision's walk of a short log),
    // copied from the layout's zeros rather than grown a cell at a time.
    this.#cells = layout.zeros.slice();
  }

  /** Whether this tally counts `plan`'s `slot` (a slot planned after it began needs a new one). */
  covers(plan: CountPlan, slot: number): boolean {
    return this.#plan === plan && slot < this.#bucketsAt;
  }

  /** The slot's count: events of its type (and filter) with a time in (now − window, now]. */
  count(slot: number): number {
    const cells = this.#cells;
    const known = cells[slot]!;
    if (known > 0) return known - 1;
    const layout = this.#layout;
    const set = layout.slotSet[slot]!;
    const k = layout.slotWindow[slot]!;
    const since = this.#now - set.windows[k]!;
    // Past the cut, the log holds nothing more of the window: the rest is in the counters.
    const fromCounters = set.counted && this.#through !== null && this.#through > since;
    const walker = layout.walkers[set.walker]!;
    const walk = this.#walk(walker, fromCounters ? this.#through! : since);
    let n = 0;
    for (let b = set.offset; b <= set.offset + k; b++) n += cells[this.#bucketsAt + b]!;
    if (fromCounters) n += countedUpTo(this.#state!, walker.type, since, this.#through!, walk.tail);
    cells[slot] = n + 1;
    return n;
  }

  /**
   * Reads the log back for one walker until an entry at or before `since` (or the log's start): the
   * engine's hottest loop, as tight as a hand-written count's (one type compared per entry).
   */
  #walk(walker: Walker, since: number): Walk {
    let walk = this.#walks[walker.index];
    if (walk === undefined) {
      walk = {
        next: this.#events.length - 1,
        earliest: Number.POSITIVE_INFINITY,
        boundary: 0,
        open: true,
        tail: 0,
      };
      walk.boundary = this.#advance(walker, walk, Number.POSITIVE_INFINITY);
      this.#walks[walker.index] = walk;
    }
    const events = this.#events;
    const cells = this.#cells;
    const type = walker.type;
    const now = this.#now;
    const currentAt = this.#currentAt;
    let next = walk.next;
    let earliest = walk.earliest;
    let boundary = walk.boundary;
    if (walker.plain !== null) {
      const current = currentAt + walker.plain.index;
      const throughHourEnd = this.#throughHourEnd;
      let tail = walk.tail;
      // The open bucket and whether the walk is still after the cut change only as it crosses a start.
      let bucket = cells[current]!;
      let open = walk.open;
      // Counted into `bucket` since it was last written back: a local, not a cell, per entry.
      let counted = 0;
      while (next >= 0 && earliest > since) {
        // An entry is read only as far as counting needs, so a malformed one is skipped.
        const entry: unknown = events[next--];
        if (typeof entry !== "object" || entry === null) continue;
        const ts: unknown = (entry as VisitorEvent).ts;
        if (typeof ts !== "number") continue;
        if (ts < earliest) {
          earliest = ts;
          if (earliest <= boundary) {
            cells[bucket]! += counted;
            counted = 0;
            boundary = this.#advance(walker, walk, earliest);
            bucket = cells[current]!;
            open = walk.open;
          }
        }
        if ((entry as VisitorEvent).type !== type || !open) continue;
        if (ts <= throughHourEnd) tail++;
        if (ts <= now) counted++;
      }
      cells[bucket]! += counted;
      walk.tail = tail;
    } else {
      const key = walker.key!;
      const byValue = walker.byValue!;
      while (next >= 0 && earliest > since) {
        const entry: unknown = events[next--];
        if (typeof entry !== "object" || entry === null) continue;
        const ts: unknown = (entry as VisitorEvent).ts;
        if (typeof ts !== "number") continue;
        if (ts < earliest) {
          earliest = ts;
          if (earliest <= boundary) boundary = this.#advance(walker, walk, earliest);
        }
        // Not `ts > now`: a time that is not a number (NaN) is no event of the window either.
        if ((entry as VisitorEvent).type !== type || !(ts <= now)) continue;
        const props: unknown = (entry as VisitorEvent).props;
        if (typeof props !== "object" || props === null) continue;
        const value: unknown = (props as Record<string, unknown>)[key];
        if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") continue;
        const set = byValue.get(value);
        // Own props only (as `where` reads them), checked only for a value that counts.
        if (set !== undefined && Object.hasOwn(props, key)) cells[cells[currentAt + set.index]!]!++;
      }
    }
    walk.next = next;
    walk.earliest = earliest;
    walk.boundary = boundary;
    return walk;
  }

  /**
   * A walk has reached `earliest`: each of its sets' windows that start at or after it are closed,
   * their entries go to the bucket of the shortest window still open (or nowhere), and past the cut
   * an unfiltered walk counts nothing more. Returns the next start to watch for.
   */
  #advance(walker: Walker, walk: Walk, earliest: number): number {
    const cells = this.#cells;
    const now = this.#now;
    const through = this.#through;
    walk.open = walker.plain === null || through === null || earliest > through;
    let boundary =
      walker.plain !== null && walk.open && through !== null ? through : Number.NEGATIVE_INFINITY;
    for (const set of walker.sets) {
      const windows = set.windows;
      let p = cells[this.#pointersAt + set.index]!;
      while (p < windows.length && earliest <= now - windows[p]!) p++;
      cells[this.#pointersAt + set.index] = p;
      const open = p < windows.length && walk.open;
      cells[this.#currentAt + set.index] = open ? this.#bucketsAt + set.offset + p : this.#discard;
      if (open && now - windows[p]! > boundary) boundary = now - windows[p]!;
    }
    return boundary;
  }
}

/**
 * Events of `type` with a time in (since, now], those `where` accepts when given: walked back from
 * the newest (the visitor's object keeps the log oldest first) to the window's start, which is
 * cheaper than indexing the log for the few counts a decision reads.
 */
export function countInWindow(
  events: unknown,
  type: string,
  since: number,
  now: number,
  where: ((event: VisitorEvent, now: number) => boolean) | null,
): number {
  if (!Array.isArray(events)) return 0;
  let n = 0;
  for (let i = events.length - 1; i >= 0; i--) {
    // The engine's hottest loop: an entry is read only as far as counting needs (an object with a
    // numeric time and this type; `where` checks the props it reads), so a malformed one is skipped.
    const event: unknown = events[i];
    if (typeof event !== "object" || event === null) continue;
    const ts: unknown = (event as VisitorEvent).ts;
    if (typeof ts !== "number") continue;
    if (ts <= since) break;
    if (
      ts <= now &&
      (event as VisitorEvent).type === type &&
      (where === null || where(event as VisitorEvent, now))
    )
      n++;
  }
  return n;
}

/**
 * Events of `type` in (since, now], unfiltered. When the log has let go of events inside the window
 * (a busy visitor's 500 events can span less than it), it is read after its cut and the hourly
 * counters up to it (docs/decisions.md, record 21).
 */
export function countSince(state: VisitorState | null, type: string, since: number, now: number): number {
  const events = state?.events;
  const through = state?.prunedThrough ?? null;
  if (through === null || through <= since) return countInWindow(events, type, since, now, null);
  const lastHourEnd = Math.floor(through / HOUR_MS) * HOUR_MS + HOUR_MS - 1;
  return (
    countInWindow(events, type, through, now, null) +
    countedUpTo(state!, type, since, through, countInWindow(events, type, through, lastHourEnd, null))
  );
}

/**
 * The counters' events in (since, through]: the whole hours from `since` on (the window's first,
 * partial hour is left out: counters know hours, not minutes), and of the hour holding `through`
 * only its events up to it (the rest of that hour is in the log, counted there: `loggedInLastHour`,
 * the log's events of the type in (through, end of that hour]). A bucket of the
 * wrong shape counts nothing: the engine never throws on a state.
 */
function countedUpTo(
  state: VisitorState,
  type: string,
  since: number,
  through: number,
  loggedInLastHour: number,
): number {
  const buckets: unknown = own(state.counts, type);
  if (!Array.isArray(buckets)) return 0;
  const lastHour = Math.floor(through / HOUR_MS) * HOUR_MS;
  let n = 0;
  for (const bucket of buckets) {
    if (!Array.isArray(bucket) || typeof bucket[0] !== "number" || typeof bucket[1] !== "number") continue;
    if (bucket[0] > lastHour) break;
    if (bucket[0] >= since) n += bucket[1];
  }
  if (lastHour >= since) n -= loggedInLastHour;
  return Math.max(0, n);
}

/** A stored event as the engine reads it: a type, a time and props (anything else in a log is skipped). */
export function isStoredEvent(value: unknown): value is VisitorEvent {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as VisitorEvent).type === "string" &&
    typeof (value as VisitorEvent).ts === "number" &&
    typeof (value as VisitorEvent).props === "object" &&
    (value as VisitorEvent).props !== null &&
    !Array.isArray((value as VisitorEvent).props)
  );
}
