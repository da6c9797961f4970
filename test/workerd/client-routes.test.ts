import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { NorthstarAdmin, NorthstarClient, NorthstarError } from "../../src/client/index.ts";
import { eid } from "./helpers.ts";

// Every route of the typed client against the real worker: the paths, bodies and answers it assumes
// are the ones the routes serve.
const connection = {
  baseUrl: "https://shop.test",
  fetch: (url: string, init: RequestInit) => exports.default.fetch(new Request(url, init)),
};
const ns = new NorthstarClient({ ...connection, apiKey: env.SERVER_API_KEY as string });
const admin = new NorthstarAdmin({ ...connection, adminToken: env.ADMIN_TOKEN as string });
const anonymous = () => `anon${crypto.randomUUID().replaceAll("-", "")}`.slice(0, 24);

describe("NorthstarClient against the worker", () => {
  it("identify links an anonymous visitor to a person, and their events come along", async () => {
    const anonymousId = anonymous();
    await ns.track({ visitorId: anonymousId }, [
      { id: eid(), type: "product_view", props: { category: "hiking" } },
    ]);
    const linked = await ns.identify({ anonymousId, userId: `client-${anonymousId}` });
    expect(linked).toMatchObject({ visitorId: expect.stringMatching(/^u_[a-f0-9]{32}$/), merged: true });
    expect(linked.mergedEvents).toBe(1);
  });

  it("consent answers the consent now held", async () => {
    const r = await ns.consent({ userId: `client-consent-${eid()}`, purposes: { marketing: false } });
    expect(r.consent.marketing).toBe(false);
  });

  it("a browser's bare user id is refused with the worker's error body", async () => {
    const browser = new NorthstarClient(connection);
    const refusal = await browser.identify({ anonymousId: anonymous(), userId: "someone" }).catch((e) => e);
    expect(refusal).toBeInstanceOf(NorthstarError);
    expect(refusal).toMatchObject({ status: 403, body: { error: "forbidden" } });
  });
});

describe("NorthstarAdmin against the worker", () => {
  it("traits set by user id show in the export, and an import adds to them", async () => {
    const person = `user:client-traits-${eid()}`;
    expect(await admin.setTraits(person, { tier: "gold" })).toMatchObject({ traits: { tier: "gold" } });
    const imported = await admin.importProfiles([
      { id: person, traits: { city: "Lyon" } },
      { id: "nope", traits: {} },
    ]);
    expect(imported).toEqual({ written: 1, errors: [{ line: 2, message: expect.any(String) }] });
    expect((await admin.exportProfile(person)).traits).toEqual({ tier: "gold", city: "Lyon" });
    await admin.setTraits(person, { tier: "silver" }, { mode: "replace" });
    expect((await admin.exportProfile(person)).traits).toEqual({ tier: "silver" });
  });

  it("importEvents backfills older history and answers each line per person", async () => {
    const person = `user:client-backfill-${eid()}`;
    const timestamp = new Date(Date.now() - 20 * 86400e3).toISOString();
    const rows = [{ id: person, event: { id: "esp-1", type: "email_open", timestamp, channel: "email" } }];
    expect(await admin.importEvents(rows)).toMatchObject({
      accepted: 1,
      visitors: [{ id: person, accepted: [1], duplicates: [], refused: [] }],
    });
    expect(await admin.importEvents(rows)).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await admin.exportProfile(person)).state?.engagement.email?.opens).toBe(1);
  });

  it("an erased person is gone from the export", async () => {
    const person = `user:client-erase-${eid()}`;
    await admin.setTraits(person, { tier: "gold" });
    expect(await admin.eraseProfile(person)).toMatchObject({ erased: true });
    await expect(admin.exportProfile(person)).rejects.toMatchObject({ status: 404 });
  });

  it("explain answers every candidate per placement", async () => {
    const why = await admin.explain({ userId: `client-explain-${eid()}`, url: "https://shop.test/" });
    expect(Object.keys(why.explanation ?? {})).toContain("home-hero");
  });

  it("rules reports the serving version, and rulesIfChanged is null for its own tag", async () => {
    const rules = await admin.rules();
    expect(rules.version).toBe("2026.11.24-1");
    expect(rules.etag).not.toBeNull();
    expect(await admin.rulesIfChanged(rules.etag!)).toBeNull();
    expect(await admin.rulesIfChanged('"another-version"')).toMatchObject({ version: "2026.11.24-1" });
  });

  it("experiment results name the arms; an unknown experiment is a 404", async () => {
    const results = await admin.experiment("hero-test");
    expect(results.experiment).toBe("hero-test");
    expect(results.report.arms.length).toBeGreaterThan(1);
    await expect(admin.experiment("no-such-test")).rejects.toMatchObject({
      status: 404,
      body: { error: "unknown_experiment" },
    });
  });

  it("preview answers a signed link to the page asked for", async () => {
    const link = await admin.preview({ path: "/running", ttlSeconds: 600 });
    expect(new URL(link.url).pathname).toBe("/running");
    expect(new URL(link.url).searchParams.get("ns_preview")).toBe(link.token);
    expect(link.expiresInSeconds).toBe(600);
  });

  it("a wrong admin token is refused as unauthorized", async () => {
    const stranger = new NorthstarAdmin({ ...connection, adminToken: "wrong" });
    await expect(stranger.rules()).rejects.toMatchObject({ status: 401, body: { error: "unauthorized" } });
  });
});
