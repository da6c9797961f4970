import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  type MessageBatchMessage,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { gunzipLines } from "../../src/export/files.ts";
import worker from "../../src/index.ts";
import { CHUNK_BYTES, messagesOf, sendExport } from "../../src/state/export-producer.ts";
import {
  type ExportMessage,
  type ExportRecord,
  ExportRecordSchema,
  erasureRecord,
  eventRecord,
  exposureRecord,
} from "../../src/state/export-record.ts";

// The consumer side of the export, driven through the vitest plugin's queue helpers: 10,000
// messages in batches of 100 (the queue's max_batch_size), 10% of them repeating an id sent in an
// earlier batch, a batch whose file writes fail half-way (retried whole), and an erasure.

const QUEUE = "northstar-export";
const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 1); // its own partitions: nothing else in this file writes there

/** `count` event records of 4 KB each in UTF-8 (2,000 "é"s), one visitor's, ids big-0, big-1, … */
function bigRecords(count: number) {
  return Array.from({ length: count }, (_, i) =>
    eventRecord("visitor-big", {
      id: `big-${i}`,
      type: "product_view",
      ts: START,
      channel: "web",
      props: { blob: "é".repeat(2000) },
    }),
  );
}

let seq = 0;
function message<Body extends ExportMessage>(body: Body, attempts = 1): MessageBatchMessage<Body> {
  return { id: `m-${++seq}`, timestamp: new Date(START), attempts, body };
}

/** Runs the worker's queue() handler on one batch, with `bucket` standing in for EXPORT_BUCKET. */
async function deliver(messages: MessageBatchMessage<ExportMessage>[], bucket: R2Bucket = env.EXPORT_BUCKET) {
  const batch = createMessageBatch<ExportMessage>(QUEUE, messages);
  const ctx = createExecutionContext();
  await worker.queue(batch as MessageBatch, { ...env, EXPORT_BUCKET: bucket }, ctx);
  return getQueueResult(batch, ctx);
}

/** Every line of every file under `prefix`, parsed with the schema that wrote it. */
async function readBack(prefix: string): Promise<{ keys: string[]; records: ExportRecord[] }> {
  const keys: string[] = [];
  const records: ExportRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.EXPORT_BUCKET.list({ prefix, cursor });
    for (const object of page.objects) {
      keys.push(object.key);
      const body = await env.EXPORT_BUCKET.get(object.key);
      for (const line of await gunzipLines(await body!.arrayBuffer()))
        records.push(ExportRecordSchema.parse(JSON.parse(line)));
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return { keys, records };
}

async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.EXPORT_BUCKET.list({ prefix, cursor });
    keys.push(...page.objects.map((object) => object.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}

/** A bucket whose puts fail after the first `allowed` (an R2 outage in the middle of a batch). */
function failingAfter(allowed: number): R2Bucket {
  let puts = 0;
  return new Proxy(env.EXPORT_BUCKET, {
    get(target, prop) {
      if (prop === "put")
        return (...args: Parameters<R2Bucket["put"]>) => {
          if (++puts > allowed) return Promise.reject(new Error("injected: R2 unavailable"));
          return target.put(...args);
        };
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("the export consumer", () => {
  it("10,000 messages with 10% repeated ids, a failed batch retried and an erasure: every id once after dedupe, every line valid", async () => {
    // 9,000 distinct events over three hours; 1,000 more messages repeat ids sent earlier.
    const unique = Array.from({ length: 9000 }, (_, i) =>
      eventRecord(`visitor-${i % 300}`, {
        id: `e-${i}`,
        type: i % 7 === 0 ? "purchase" : "product_view",
        ts: START + Math.floor((i / 9000) * 3 * HOUR),
        channel: "web",
        props: { category: i % 2 ? "running" : "hiking", n: i },
      }),
    );
    const bodies: ExportRecord[] = [...unique];
    for (let k = 0; k < 1000; k++) bodies.splice(1000 + k * 9, 0, unique[(k * 7) % 1000]!);
    expect(bodies).toHaveLength(10_000);
    const erasure = erasureRecord("u_erased", ["anon-1", "anon-2"], START + 90 * 60_000);

    for (let b = 0; b < 100; b++) {
      const batch = bodies.slice(b * 100, b * 100 + 100).map((body) => message(body));
      if (b === 40) batch.push(message(erasure));
      if (b === 60) {
        const partitions = new Set(batch.map((m) => m.body.at.slice(0, 13))).size;
        const before = await listKeys("type=event/");
        // The first file of this batch is written, then R2 fails: the messages of the files not
        // written are retried, and (at-least-once) the runtime may deliver the whole batch again.
        const crashed = await deliver(batch, failingAfter(1));
        expect(crashed.retryMessages.length).toBeGreaterThan(0);
        expect(crashed.explicitAcks.length + crashed.retryMessages.length).toBe(batch.length);
        expect((await listKeys("type=event/")).length).toBe(before.length + 1);
        const retried = await deliver(batch.map((m) => ({ ...m, attempts: 2 })));
        expect(retried.retryMessages).toEqual([]);
        // One file per partition of the batch: the one written before the failure was overwritten.
        expect((await listKeys("type=event/")).length).toBe(before.length + partitions);
        continue;
      }
      const result = await deliver(batch);
      expect(result.retryMessages).toEqual([]);
      expect(result.explicitAcks).toHaveLength(batch.length);
    }

    const events = await readBack("type=event/date=2026-01-01/");
    // Deduplicated by id, as the warehouse does (docs/export.md): every event exactly once.
    const byId = new Map(events.records.map((record) => [record.id, record]));
    expect(byId.size).toBe(9000);
    expect([...byId.keys()].sort()).toEqual(unique.map((record) => record.id).sort());
    expect(byId.get(unique[1234]!.id)).toEqual(unique[1234]);
    // Within a file no id repeats; repeats across files are only the ones sent again.
    expect(events.records.length).toBeLessThanOrEqual(10_000);
    for (const key of events.keys)
      expect(key).toMatch(/^type=event\/date=2026-01-01\/hour=0[0-2]\/[0-9a-f]{32}\.ndjson\.gz$/);

    const erasures = await readBack("type=erasure/date=2026-01-01/hour=01/");
    expect(erasures.records).toEqual([erasure]);
  });

  it("records sent together in one message (a page's view and exposure) are written to their own files; the message is acknowledged only once every file is", async () => {
    const at = Date.UTC(2026, 0, 3, 7);
    const view = eventRecord("visitor-p", {
      id: "pv-1",
      type: "page_view",
      ts: at,
      channel: "web",
      props: {},
    });
    const shown = exposureRecord(
      "visitor-p",
      at,
      { placement: "home-hero", experience: "hero-running", experiment: null, variant: null },
      "v1",
    );
    const [packed] = messagesOf([view, shown]);
    expect(packed).toEqual([view, shown]); // small lines: one message, one queue operation
    // R2 fails after the page view's file: the message is retried, not half acknowledged.
    const crashed = await deliver([message(packed!)], failingAfter(1));
    expect(crashed.retryMessages).toHaveLength(1);
    expect(crashed.explicitAcks).toEqual([]);
    const again = await deliver([message(packed!, 2)]);
    expect(again.explicitAcks).toHaveLength(1);
    expect((await readBack("type=event/date=2026-01-03/hour=07/")).records).toEqual([view]);
    expect((await readBack("type=exposure/date=2026-01-03/hour=07/")).records).toEqual([shown]);
  });

  it("records are packed into messages of at most 60 KB each", () => {
    const big = bigRecords(40);
    const messages = messagesOf(big);
    expect(messages.length).toBeGreaterThan(1);
    expect(messages.flat()).toEqual(big);
    for (const m of messages)
      expect(new TextEncoder().encode(JSON.stringify(m)).length).toBeLessThanOrEqual(60_000);
  });

  it("a send larger than one sendBatch goes in several, each within 180 KB, every record once and in order", async () => {
    const big = bigRecords(120); // 480 KB in all
    const batches: unknown[][][] = [];
    const EXPORT = {
      sendBatch: async (messages: Iterable<{ body: unknown }>) => {
        batches.push([...messages].map((m) => m.body as unknown[]));
      },
    } as unknown as Queue;
    await sendExport({ EXPORT }, big);
    expect(batches.length).toBeGreaterThan(2);
    expect(batches.flat(2)).toEqual(big);
    for (const batch of batches)
      expect(new TextEncoder().encode(JSON.stringify(batch)).length).toBeLessThanOrEqual(CHUNK_BYTES + 2);
    // A page's few lines: one sendBatch of one message.
    batches.length = 0;
    await sendExport(
      { EXPORT },
      big.slice(0, 2).map((r) => ({ ...r, event: { ...r.event, props: {} } })),
    );
    expect(batches.map((b) => b.length)).toEqual([1]);
  });

  it("a message that is no export record is retried (kept for the dead-letter queue), the rest written", async () => {
    const good = eventRecord("visitor-x", {
      id: "ok-1",
      type: "page_view",
      ts: Date.UTC(2026, 0, 2, 5),
      channel: "web",
      props: {},
    });
    const bad = { ...good, id: "bad-1", v: 99 } as unknown as ExportRecord;
    const result = await deliver([message(good), message(bad)]);
    expect(result.explicitAcks).toEqual([`m-${seq - 1}`]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual([`m-${seq}`]);
    expect((await readBack("type=event/date=2026-01-02/hour=05/")).records).toEqual([good]);
  });
});
