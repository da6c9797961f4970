/**
 * Simulated visitors for the demo, so a fresh `npm start` has an experiment with enough visitors for
 * its intervals to mean something:
 *
 *   npm run demo:traffic                          (against http://localhost:8787)
 *   npm run demo:traffic -- --url http://127.0.0.1:8788 --visitors 300 --seed 7
 *
 * Each visitor opens the home page through the proxy as a browser, twice (the first sets the
 * `ns_vid` cookie, the second with it shows the hero test's arm and counts the visitor), some browse
 * a category, and their events go to POST /v1/events with the server key, as a site's backend would
 * send them; a few ask POST /v1/decide for the app. Whether a visitor browses, which category,
 * whether they add to cart (more often under the `bold` hero: the demo's planted effect) and whether
 * and for how much they then buy come from a seeded generator, so the same seed makes the same choices.
 * Ends with the hero test's results from GET /v1/experiments/hero-test.
 */
import { seededRandom } from "./seeded-random.ts";

export interface Options {
  readonly url: string;
  readonly visitors: number;
  readonly seed: number;
  readonly concurrency: number;
  readonly adminToken: string;
  readonly serverKey: string;
}

const HELP = `npm run demo:traffic -- [--url http://localhost:8787] [--visitors 300] [--seed 1] [--concurrency 6]
  --url          the running worker (npm start); also NORTHSTAR_URL
  --visitors     how many simulated visitors (default 300)
  --seed         the choices' seed (default 1): the same seed makes the same choices
  --concurrency  visitors at once (default 6)
  ADMIN_TOKEN and SERVER_API_KEY default to the development values of .dev.vars`;

function options(argv: readonly string[]): Options {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const whole = (name: string, fallback: number): number => {
    const raw = flag(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number ≥ 1, not ${raw}`);
    return n;
  };
  return {
    url: (flag("url") ?? process.env.NORTHSTAR_URL ?? "http://localhost:8787").replace(/\/$/, ""),
    visitors: whole("visitors", 300),
    seed: whole("seed", 1),
    concurrency: whole("concurrency", 6),
    adminToken: process.env.ADMIN_TOKEN ?? "dev-admin-token",
    serverKey: process.env.SERVER_API_KEY ?? "dev-server-api-key",
  };
}

const BROWSER_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0 Safari/537.36";

/**
 * Add-to-cart chance by the hero a visitor saw: the demo's planted effect. The control's headline is
 * also the site's own hero, which the test's held-out visitors see.
 */
const ADD_TO_CART = { control: 0.12, bold: 0.2, other: 0.1 } as const;
/** The share of visitors who add to cart and then buy (for 40 to 200): the hero test's revenue goal. */
const BUY_AFTER_ADD = 0.5;
const CATEGORIES = ["running", "hiking"] as const;

type Arm = keyof typeof ADD_TO_CART;
const HEROES: Record<Arm, string> = {
  control: '"Gear for every trail" (hero-test control, or held out)',
  bold: '"Go further this weekend" (hero-test bold)',
  other: "another hero",
};

interface Outcome {
  readonly arm: Arm;
  readonly converted: boolean;
  readonly failed: string | null;
}

async function must(res: Response, what: string): Promise<Response> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text().catch(() => "")}`.trim());
  return res;
}

/** Which hero the page showed (the hero test's two arms have their own headlines). */
function armOf(page: string): Arm {
  if (page.includes("Gear for every trail")) return "control";
  if (page.includes("Go further this weekend")) return "bold";
  return "other";
}

async function oneVisitor(o: Options, index: number): Promise<Outcome> {
  const random = seededRandom(o.seed * 100_003 + index);
  const first = await must(
    await fetch(`${o.url}/`, { headers: { "user-agent": BROWSER_UA }, redirect: "manual" }),
    "home page",
  );
  await first.arrayBuffer();
  const cookie = first.headers.getSetCookie().find((c) => c.startsWith("ns_vid="));
  if (!cookie) throw new Error("the home page set no ns_vid cookie");
  const visitorId = cookie.slice("ns_vid=".length).split(".")[0]!;
  // A page without a cookie records nothing (docs/decisions.md, record 12): the visitor is assigned
  // and exposed from the next page with their cookie, as a browser's reload or next visit would be.
  const home = await must(
    await fetch(`${o.url}/`, {
      headers: { "user-agent": BROWSER_UA, cookie: cookie.split(";")[0]! },
      redirect: "manual",
    }),
    "home page, again",
  );
  const page = await home.text();
  const arm = armOf(page);
  const events: Array<Record<string, unknown>> = [
    { id: `demo-${o.seed}-${index}-0`, type: "page_view", props: { path: "/" } },
  ];
  const category = CATEGORIES[Math.floor(random() * CATEGORIES.length)]!;
  if (random() < 0.6) {
    // Browsing through the proxy, as the visitor's browser would (the cookie keeps them one visitor).
    await must(
      await fetch(`${o.url}/${category}`, {
        headers: { "user-agent": BROWSER_UA, cookie: cookie.split(";")[0]! },
      }),
      `/${category}`,
    ).then((r) => r.arrayBuffer());
    events.push(
      { id: `demo-${o.seed}-${index}-1`, type: "page_view", props: { path: `/${category}`, category } },
      { id: `demo-${o.seed}-${index}-2`, type: "product_view", props: { category } },
    );
  }
  const converted = random() < ADD_TO_CART[arm];
  if (converted) events.push({ id: `demo-${o.seed}-${index}-3`, type: "add_to_cart", props: { category } });
  // Some who add to cart buy, for an amount that varies: the hero test's `revenue` goal.
  if (converted && random() < BUY_AFTER_ADD)
    events.push({
      id: `demo-${o.seed}-${index}-4`,
      type: "purchase",
      props: { category, value: 40 + Math.round(random() * 160), currency: "EUR" },
    });
  const server = { authorization: `Bearer ${o.serverKey}`, "content-type": "application/json" };
  await must(
    await fetch(`${o.url}/_ns/v1/events`, {
      method: "POST",
      headers: server,
      body: JSON.stringify({ visitorId, sentAt: Date.now(), events }),
    }),
    "events",
  ).then((r) => r.arrayBuffer());
  if (random() < 0.1) {
    // The app asks the same engine for the same person.
    await must(
      await fetch(`${o.url}/_ns/v1/decide`, {
        method: "POST",
        headers: server,
        body: JSON.stringify({ visitorId, channel: "app", placements: ["home-hero"] }),
      }),
      "decide",
    ).then((r) => r.arrayBuffer());
  }
  return { arm, converted, failed: null };
}

export async function runTraffic(o: Options): Promise<string[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < o.visitors; i = next++) {
      try {
        outcomes.push(await oneVisitor(o, i));
      } catch (error) {
        outcomes.push({ arm: "other", converted: false, failed: String(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, o.visitors) }, worker));
  const failed = outcomes.filter((x) => x.failed);
  const lines = [`${o.visitors} simulated visitors against ${o.url} (seed ${o.seed})`];
  for (const arm of ["control", "bold", "other"] as const) {
    const seen = outcomes.filter((x) => !x.failed && x.arm === arm);
    lines.push(
      `  saw ${HEROES[arm]}: ${seen.length} visitors, ${seen.filter((x) => x.converted).length} added to cart`,
    );
  }
  if (failed.length) lines.push(`  ${failed.length} failed, e.g. ${failed[0]!.failed}`);
  const res = await fetch(`${o.url}/_ns/v1/experiments/hero-test`, {
    headers: { authorization: `Bearer ${o.adminToken}` },
  });
  if (res.ok) {
    const body = (await res.json()) as {
      report: {
        arms: Array<{ id: string; exposures: number; conversions: number; rate: number }>;
        note: string;
      };
    };
    lines.push("hero-test as GET /_ns/v1/experiments/hero-test counts it:");
    for (const a of body.report.arms)
      lines.push(
        `  ${a.id}: ${a.exposures} visitors, ${a.conversions} conversions (${(a.rate * 100).toFixed(1)}%)`,
      );
    lines.push(`  ${body.report.note}`);
  } else lines.push(`GET /_ns/v1/experiments/hero-test answered ${res.status}`);
  lines.push(`Open ${o.url}/_ns/console to see it (sign in with the admin token).`);
  if (failed.length === o.visitors) throw new Error(lines.join("\n"));
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes("--help")) {
    console.log(HELP);
  } else {
    try {
      for (const line of await runTraffic(options(process.argv.slice(2)))) console.log(line);
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    }
  }
}

export { options as trafficOptions };
