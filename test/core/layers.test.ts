import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { murmur3 } from "../../src/core/bucketing.ts";
import { decide } from "../../src/core/decide.ts";
import { LAYER_BUCKETS, layerBucket } from "../../src/core/layers.ts";
import { emptyState } from "../../src/core/visitor-state.ts";
import { parseRules } from "../../src/rules/index.ts";
import { compile, context, NOW } from "./helpers.ts";

/**
 * Experiment layers: a visitor is in at most one experiment of a layer, wherever they are decided
 * for, the layer's visitors are split by the experiments' shares, and layers draw independently.
 */

type Share = { id: string; share?: number; from?: number };

/** One placement per experiment, each with one experience tied to it; experiments in `layers`. */
function layeredDoc(
  layers: Record<string, { seed: string; experiments: Share[] }>,
  over: { status?: Record<string, string>; holdout?: Record<string, number> } = {},
) {
  const placements: Record<string, unknown> = {};
  const experiences: unknown[] = [];
  const experiments: Record<string, unknown> = {};
  for (const [layerId, layer] of Object.entries(layers)) {
    for (const { id, share, from } of layer.experiments) {
      placements[`p-${id}`] = { selector: `#${id}`, default: { html: "default" } };
      experiences.push({
        id: `x-${id}`,
        placement: `p-${id}`,
        experiment: id,
        variants: { a: { html: `${id}:a` }, b: { html: `${id}:b` } },
      });
      experiments[id] = {
        seed: `seed-${id}`,
        variants: [
          { id: "a", weight: 50 },
          { id: "b", weight: 50 },
        ],
        goal: "purchase",
        holdout: over.holdout?.[id] ?? 0,
        status: over.status?.[id] ?? "running",
        layer: {
          id: layerId,
          ...(share === undefined ? {} : { share }),
          ...(from === undefined ? {} : { from }),
        },
      };
    }
  }
  const declared = Object.fromEntries(
    Object.entries(layers).map(([id, layer]) => [id, { seed: layer.seed }]),
  );
  return { version: "layers", placements, experiences, experiments, layers: declared };
}

function decideFor(rules: Awaited<ReturnType<typeof compile>>, visitorId: string, explain = false) {
  return decide(rules, {
    visitorId,
    now: NOW,
    traits: {},
    state: null,
    context: context(),
    consent: {},
    explain,
  });
}

/** The experiments a visitor was exposed to (what the edge counts in each experiment's object). */
function exposedTo(result: ReturnType<typeof decide>): string[] {
  return result.exposures.flatMap((exposure) => (exposure.experiment ? [exposure.experiment] : []));
}

const THREE_OF_FOUR = {
  checkout: {
    seed: "checkout-layer",
    experiments: [
      { id: "c1", share: 0.2 },
      { id: "c2", share: 0.3 },
      { id: "c3", share: 0.3 },
    ],
  },
};

describe("the split of a layer", () => {
  it("puts no visitor in two experiments of a layer, and splits its visitors by the shares (20,000 visitors)", async () => {
    const rules = await compile(
      layeredDoc({
        ...THREE_OF_FOUR,
        home: {
          seed: "home-layer",
          experiments: [
            { id: "h1", share: 0.5 },
            { id: "h2", share: 0.5 },
          ],
        },
      }),
    );
    const n = 20_000;
    const inLayer = { c1: 0, c2: 0, c3: 0, none: 0 };
    let c1AndH1 = 0;
    // Visitors in two experiments of one layer (checkout), or not in exactly one of home's (which
    // the shares fill): counted rather than asserted per visitor, so the loop stays fast.
    let inTwo = 0;
    let notInOne = 0;
    for (let i = 0; i < n; i++) {
      const exposed = exposedTo(decideFor(rules, `visitor-${i}`));
      const checkout = exposed.filter((id) => id.startsWith("c"));
      const home = exposed.filter((id) => id.startsWith("h"));
      if (checkout.length > 1) inTwo++;
      if (home.length !== 1) notInOne++;
      const slot = (checkout[0] ?? "none") as keyof typeof inLayer;
      inLayer[slot]++;
      if (slot === "c1" && home[0] === "h1") c1AndH1++;
    }
    expect(inTwo).toBe(0);
    expect(notInOne).toBe(0);
    // A binomial share over 20,000 visitors has a standard deviation of at most 0.0036: ±0.015 is 4σ.
    for (const [slot, share] of [
      ["c1", 0.2],
      ["c2", 0.3],
      ["c3", 0.3],
      ["none", 0.2],
    ] as const)
      expect(Math.abs(inLayer[slot] / n - share)).toBeLessThan(0.015);
    // Layers draw independently: half of c1's visitors are in h1, as half of everyone is.
    expect(Math.abs(c1AndH1 / inLayer.c1 - 0.5)).toBeLessThan(0.035);
    // 20,000 decisions take a few seconds on a busy machine: a limit for a hang, not a timing check.
  }, 60_000);

  it("gives any visitor id at most one experiment of the layer, the same one on every channel", async () => {
    const rules = await compile(layeredDoc(THREE_OF_FOUR));
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (visitorId) => {
        const onChannels = ["web", "app", "email"].map((channel) =>
          exposedTo(
            decide(rules, {
              visitorId,
              now: NOW,
              traits: {},
              state: null,
              context: context({ channel }),
              consent: {},
            }),
          ),
        );
        expect(onChannels[0]!.length).toBeLessThanOrEqual(1);
        expect(onChannels[1]).toEqual(onChannels[0]);
        expect(onChannels[2]).toEqual(onChannels[0]);
      }),
      { numRuns: 300 },
    );
  });

  it("draws the layer's bucket exactly as (hash × 10,000) >> 32 in integers", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (visitorId) => {
        const hash = murmur3(new TextEncoder().encode(`layer-seed:${visitorId}`));
        expect(layerBucket("layer-seed", visitorId)).toBe(Number((BigInt(hash) * 10_000n) >> 32n));
      }),
    );
    expect(LAYER_BUCKETS).toBe(10_000);
  });

  it("moves nobody in the other experiments when one is added in the free part of the layer", async () => {
    const before = await compile(layeredDoc(THREE_OF_FOUR));
    const after = await compile(
      layeredDoc({
        checkout: {
          seed: "checkout-layer",
          experiments: [...THREE_OF_FOUR.checkout.experiments, { id: "c4", share: 0.2 }],
        },
      }),
    );
    for (let i = 0; i < 2000; i++) {
      const was = exposedTo(decideFor(before, `visitor-${i}`));
      const is = exposedTo(decideFor(after, `visitor-${i}`));
      if (was.length) expect(is).toEqual(was);
      else expect(is.every((id) => id === "c4")).toBe(true);
    }
  });

  it("moves nobody in a later experiment when an earlier one is removed and the later keeps its start", async () => {
    const before = await compile(
      layeredDoc({
        checkout: {
          seed: "checkout-layer",
          experiments: [
            { id: "c1", share: 0.5 },
            { id: "c2", share: 0.5 },
          ],
        },
      }),
    );
    const after = await compile(
      layeredDoc({
        checkout: { seed: "checkout-layer", experiments: [{ id: "c2", share: 0.5, from: 0.5 }] },
      }),
    );
    for (let i = 0; i < 2000; i++) {
      const was = exposedTo(decideFor(before, `visitor-${i}`));
      const is = exposedTo(decideFor(after, `visitor-${i}`));
      expect(is).toEqual(was.filter((id) => id === "c2"));
    }
  });

  it("splits what the others leave equally among experiments that give no share", async () => {
    const rules = await compile(
      layeredDoc({
        checkout: {
          seed: "checkout-layer",
          experiments: [{ id: "c1", share: 0.4 }, { id: "c2" }, { id: "c3" }],
        },
      }),
    );
    const counts: Record<string, number> = { c1: 0, c2: 0, c3: 0 };
    for (let i = 0; i < 10_000; i++)
      for (const id of exposedTo(decideFor(rules, `visitor-${i}`))) counts[id]!++;
    expect(Math.abs(counts.c1! / 10_000 - 0.4)).toBeLessThan(0.02);
    expect(Math.abs(counts.c2! / 10_000 - 0.3)).toBeLessThan(0.02);
    expect(Math.abs(counts.c3! / 10_000 - 0.3)).toBeLessThan(0.02);
  });
});

describe("a visitor the layer gives to another experiment", () => {
  /** Two tests of one layer on the same hero, then an evergreen hero below them. */
  const sharedHero = (status: string = "running") => ({
    version: "same-slot",
    placements: { hero: { selector: "#hero", default: { html: "the site's hero" } } },
    experiences: [
      {
        id: "copy-test",
        placement: "hero",
        priority: 10,
        experiment: "copy",
        variants: { a: { html: "copy a" }, b: { html: "copy b" } },
      },
      {
        id: "image-test",
        placement: "hero",
        priority: 10,
        experiment: "image",
        variants: { a: { html: "image a" }, b: { html: "image b" } },
      },
      { id: "evergreen", placement: "hero", priority: 0, content: { html: "evergreen" } },
    ],
    experiments: {
      copy: {
        seed: "copy-seed",
        variants: [
          { id: "a", weight: 50 },
          { id: "b", weight: 50 },
        ],
        goal: "purchase",
        holdout: 0.2,
        status,
        layer: { id: "hero", share: 0.4 },
      },
      image: {
        seed: "image-seed",
        variants: [
          { id: "a", weight: 50 },
          { id: "b", weight: 50 },
        ],
        goal: "purchase",
        layer: { id: "hero", share: 0.4 },
      },
    },
    layers: { hero: { seed: "hero-layer" } },
  });

  /** The layer's owner of a visitor: copy has buckets 0–3,999, image 4,000–7,999, none the rest. */
  const ownerOf = (visitorId: string) => {
    const slot = layerBucket("hero-layer", visitorId);
    return slot < 4000 ? "copy" : slot < 8000 ? "image" : null;
  };

  /** The first visitor-<i> the layer gives to `experiment` (null: to none). */
  function visitorIn(experiment: string | null): string {
    for (let i = 0; ; i++) if (ownerOf(`visitor-${i}`) === experiment) return `visitor-${i}`;
  }

  it("goes on to the candidate of their own experiment on the same placement", async () => {
    const rules = await compile(sharedHero());
    const id = visitorIn("image");
    const result = decideFor(rules, id, true);
    expect(result.decisions[0]).toMatchObject({ experience: "image-test", reason: "EXPERIMENT" });
    expect(exposedTo(result)).toEqual(["image"]);
    expect(result.assignments).not.toHaveProperty("copy");
    expect(result.explanation!.hero).toEqual([
      expect.objectContaining({
        experience: "copy-test",
        outcome: "layer",
        detail: "not in this experiment: layer hero gave the visitor to image",
      }),
      expect.objectContaining({
        experience: "image-test",
        outcome: "won",
        detail: "in layer hero, assigned to experiment image",
      }),
      expect.objectContaining({ experience: "evergreen", outcome: "lower_priority" }),
    ]);
  });

  it("in the layer's unallocated share, gets what a visitor in no experiment gets: the next candidate", async () => {
    const rules = await compile(sharedHero());
    const result = decideFor(rules, visitorIn(null), true);
    expect(result.decisions[0]).toMatchObject({ experience: "evergreen", reason: "TARGET_MATCH" });
    expect(exposedTo(result)).toEqual([]);
    expect(result.explanation!.hero![0]).toMatchObject({
      outcome: "layer",
      detail: "not in this experiment: layer hero gave the visitor to no experiment (its unallocated share)",
    });
  });

  it("is never in the experiment's holdout: only the experiment's own visitors are held out, and they see the default", async () => {
    const rules = await compile(sharedHero());
    let heldOut = 0;
    for (let i = 0; i < 3000; i++) {
      const id = `visitor-${i}`;
      const result = decideFor(rules, id);
      const inCopy = ownerOf(id) === "copy";
      if (result.assignments.copy === "holdout") {
        heldOut++;
        expect(inCopy).toBe(true);
        expect(result.decisions[0]).toMatchObject({ experience: null, reason: "HOLDOUT" });
        expect(result.decisions[0]!.html).toBe("the site's hero");
      }
      if (!inCopy) expect(result.assignments).not.toHaveProperty("copy");
    }
    expect(heldOut).toBeGreaterThan(0);
  });

  it("stays out even with an assignment stored before the experiment joined the layer", async () => {
    const rules = await compile(sharedHero());
    const id = visitorIn("image");
    const result = decide(rules, {
      visitorId: id,
      now: NOW,
      traits: {},
      state: { ...emptyState(id), assignments: { copy: "a" } },
      context: context(),
      consent: {},
    });
    expect(result.decisions[0]!.experience).toBe("image-test");
  });

  it("is decided the same without consent to personalize: the layer is a pure draw, nothing stored", async () => {
    const rules = await compile(sharedHero());
    const id = visitorIn("image");
    const result = decide(rules, {
      visitorId: id,
      now: NOW,
      traits: {},
      state: null,
      context: context(),
      consent: { personalization: false },
    });
    expect(result.decisions[0]!.experience).toBe("image-test");
    expect(result.assignments).toEqual({});
  });

  it("sees a stopped experiment's first variant like everyone: a stopped experiment no longer shares its layer", async () => {
    const rules = await compile(sharedHero("stopped"));
    const result = decideFor(rules, visitorIn("image"), true);
    expect(result.decisions[0]).toMatchObject({ experience: "copy-test", variant: "a" });
    expect(result.explanation!.hero![0]!.detail).toBeNull();
  });
});

describe("validating layers", () => {
  const problems = (doc: unknown) => {
    const parsed = parseRules(doc);
    return parsed.ok ? [] : parsed.errors;
  };
  const two = (a: Omit<Share, "id">, b: Omit<Share, "id">) =>
    layeredDoc({
      checkout: {
        seed: "checkout-layer",
        experiments: [
          { id: "c1", ...a },
          { id: "c2", ...b },
        ],
      },
    });

  it("accepts shares that fill the layer exactly, written as decimals", () => {
    expect(
      problems(
        layeredDoc({
          checkout: {
            seed: "checkout-layer",
            experiments: [
              { id: "c1", share: 0.1 },
              { id: "c2", share: 0.2 },
              { id: "c3", share: 0.7 },
            ],
          },
        }),
      ),
    ).toEqual([]);
  });

  it("names an unknown layer at the experiment's layer id", () => {
    const doc = two({ share: 0.5 }, { share: 0.5 });
    (doc.experiments.c2 as { layer: { id: string } }).layer.id = "chekout";
    expect(problems(doc)).toEqual([{ path: "experiments.c2.layer.id", message: 'unknown layer "chekout"' }]);
  });

  it("refuses shares that add up to more than the layer, where they pass it", () => {
    expect(problems(two({ share: 0.6 }, { share: 0.5 }))).toEqual([
      {
        path: "experiments.c2.layer.share",
        message: "layer checkout's shares add up to 1.1 here: more than all of its visitors (at most 1)",
      },
    ]);
  });

  it("refuses a share over 1 at its path", () => {
    expect(problems(two({ share: 1.5 }, {}))).toEqual([
      expect.objectContaining({ path: "experiments.c1.layer.share" }),
    ]);
  });

  it("refuses ranges that overlap, naming both", () => {
    expect(problems(two({ share: 0.5 }, { share: 0.3, from: 0.4 }))).toEqual([
      {
        path: "experiments.c2.layer",
        message:
          "its part of layer checkout, from 0.4 to 0.7, overlaps c1's (0 to 0.5): a visitor would be in both",
      },
    ]);
  });

  it("refuses a range that reaches past the end of the layer", () => {
    expect(problems(two({ share: 0.3 }, { share: 0.4, from: 0.8 }))).toEqual([
      {
        path: "experiments.c2.layer",
        message: "its part of layer checkout, from 0.8 to 1.2, reaches past the end of the layer (1)",
      },
    ]);
  });

  it("refuses an experiment without a share when the others leave no visitors", () => {
    expect(problems(two({ share: 1 }, {}))).toEqual([
      {
        path: "experiments.c2.layer",
        message: "layer checkout has no visitors left for this experiment: the others' shares take them all",
      },
    ]);
  });

  it("refuses a layer seed another layer or an experiment already draws with", () => {
    const doc = two({ share: 0.5 }, { share: 0.5 }) as ReturnType<typeof layeredDoc> & {
      layers: Record<string, { seed: string }>;
    };
    doc.layers.checkout!.seed = "seed-c1";
    doc.layers.home = { seed: "seed-c1" };
    expect(problems(doc)).toEqual([
      {
        path: "layers.checkout.seed",
        message: "experiment c1 already draws with this seed: give the layer a seed of its own",
      },
      {
        path: "layers.home.seed",
        message: "experiment c1 already draws with this seed: give the layer a seed of its own",
      },
    ]);
  });
});
