import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import { type DecisionResult, decide } from "../core/decide.ts";
import { channelOrder, nextHourAt, quietUntil } from "../core/journey-time.ts";
import type { Millis, RequestContext } from "../core/model.ts";
import { utcOffsetMinutes } from "../core/time-zone.ts";
import { countExposures } from "../measure/experiment-object.ts";
import { readConfig } from "../platform/config.ts";
import type { Env } from "../platform/env.ts";
import type { CompiledJourney, CompiledRules, CompiledStep } from "../rules/index.ts";
import { journeyScope } from "../rules/journey-triggers.ts";
import { resolveCanonical } from "../state/identity.ts";
import { readTraits } from "../state/profiles.ts";
import { activeRules } from "../state/rules-loader.ts";
import {
  type JourneyFacts,
  type JourneyParams,
  type SentMessage,
  type VisitorObject,
  visitorObject,
} from "../state/visitor-object.ts";
import type { DeliveryMessage } from "./message.ts";
import { setTrait } from "./traits.ts";

/**
 * One journey entry, run by Cloudflare Workflows: its waits are `step.sleep`/`sleepUntil`, a wait for
 * an event is `step.waitForEvent` (the visitor's object forwards the person's events with
 * `sendEvent`), and everything that talks to a store is a `step.do` with retries, whose result the
 * engine keeps, so a replayed run repeats no side effect. Each store step finds the person's object
 * again (`person`): an anonymous visitor who logs in mid-journey goes on as the known person, whose
 * object their entry moved to. Before every step the person is checked again against that object: erased, marketing consent withdrawn, cancelled by an admin,
 * an exit event since they entered, or the journey's exit condition: the entry ends there.
 *
 * The journey keeps its own clock: the time it entered, moved on by each wait, never behind the real
 * clock. In production the two agree; in tests whose sleeps are skipped (workflow introspection)
 * the journey still sees the hours and days its waits stood for.
 */

/** What the instance returns when it ends: why, at which step, and the messages it enqueued. */
export interface JourneyOutcome {
  readonly ended: string;
  readonly step: string;
  readonly sent: ReadonlyArray<{ readonly step: string; readonly channel: string; readonly sendAt: Millis }>;
}

const STORE_RETRIES = { retries: { limit: 5, delay: "2 seconds" as const, backoff: "exponential" as const } };

/** A journey's requests have no page: the decision context of an outbound channel. */
function outboundContext(channel: string): RequestContext {
  return {
    channel,
    url: null,
    path: "/",
    query: {},
    referrer: null,
    geo: { country: null, region: null, city: null, timezone: null },
    device: "unknown",
    locale: null,
    userAgent: null,
    custom: {},
  };
}

/** Why an entry must end before this step; null when it goes on. */
function exitReason(
  facts: JourneyFacts,
  journey: CompiledJourney,
  rules: CompiledRules,
  now: Millis,
  traits: Readonly<Record<string, unknown>>,
): string | null {
  if (facts.erased) return "erased";
  if (!facts.entry) return "exited";
  if (facts.entry.status === "cancelled") return "cancelled";
  if (facts.entry.status === "ended") return "exited";
  if (!facts.marketing) return "consent withdrawn";
  for (const type of journey.exitEvents) {
    const last = facts.state.lastByType[type];
    if (last !== undefined && last >= facts.entry.enteredAt) return `exit event: ${type}`;
  }
  if (journey.exitTest?.(journeyScope(rules, facts.state, now, { traits }))) return "exit condition";
  return null;
}

export class JourneyWorkflow extends WorkflowEntrypoint<Env, JourneyParams> {
  override async run(
    event: Readonly<WorkflowEvent<JourneyParams>>,
    step: WorkflowStep,
  ): Promise<JourneyOutcome> {
    const params = event.payload;
    const instance = event.instanceId;
    let clock = params.enteredAt;
    const sent: Array<{ step: string; channel: string; sendAt: Millis }> = [];
    const recordEnd = (object: VisitorObject, ended: string, at: string, now: Millis) =>
      object.journeyProgress(instance, { step: at, what: "ended", detail: ended, now, end: "ended" });
    const end = async (ended: string, at: string): Promise<JourneyOutcome> => {
      await step.do(`end at ${at}`, STORE_RETRIES, async () => {
        await recordEnd((await this.person(params.visitorId)).object, ended, at, clock);
        return true;
      });
      return { ended, step: at, sent };
    };

    let index = 0;
    let stepId = "(start)";
    while (true) {
      // The rules as they stand now: an edited journey goes on with its new steps, by name. A check
      // that ends the entry (an exit, or no step left) records the end itself: one step, not two,
      // since recording it again on a retry changes nothing.
      const check = await step.do(`check ${index} ${stepId}`, STORE_RETRIES, async () => {
        const rules = await this.rules();
        const journey = rules?.journeys.byId[params.journey];
        const now = Math.max(Date.now(), clock);
        const visitor = await this.person(params.visitorId);
        let exit: string | null = "journey removed from the rules";
        let steps = 0;
        if (rules && journey) {
          const facts = await visitor.object.journeyFacts(instance);
          const traits = (await readTraits(this.env, visitor.id))?.traits ?? {};
          exit = exitReason(facts, journey, rules, now, traits);
          steps = journey.steps.length;
          const next = journey.steps[index];
          if (!exit && next) {
            await visitor.object.journeyProgress(instance, { step: next.id, what: "at step", now });
            return { now, exit, steps };
          }
        }
        await recordEnd(visitor.object, exit ?? "completed", stepId, now);
        return { now, exit, steps, endRecorded: true };
      });
      clock = check.now;
      if (check.exit || index >= check.steps) {
        const ended = check.exit ?? "completed";
        // A check stored by an earlier version of this code (an instance older than it) left the end to its own step.
        if (!("endRecorded" in check)) return end(ended, stepId);
        return { ended, step: stepId, sent };
      }
      const current = (await this.journey(params.journey))?.steps[index];
      if (!current) return end("completed", stepId);
      stepId = current.id;
      const next = await this.runStep(current, index, { step, instance, params, clock, sent });
      if (next.end) return end(next.end, stepId);
      clock = next.clock;
      index = next.index;
    }
  }

  private async rules(): Promise<CompiledRules | null> {
    return (await activeRules(this.env))?.compiled ?? null;
  }

  private async journey(id: string): Promise<CompiledJourney | null> {
    return (await this.rules())?.journeys.byId[id] ?? null;
  }

  /**
   * The person this entry is for now, and their object: the id it started with, or the person it
   * was merged into at a login. The KV alias says so once it has spread; until then the visitor's
   * own object does (its forwarding address, set before its journeys move, answered once they have).
   */
  private async person(visitorId: string): Promise<{ id: string; object: VisitorObject }> {
    let id = await resolveCanonical(this.env, visitorId);
    if (id === visitorId) id = (await visitorObject(this.env, visitorId).forwardingAddress()) ?? visitorId;
    return { id, object: visitorObject(this.env, id) };
  }

  /** One step: where the journey goes next, on which clock, or why it ends. */
  private async runStep(
    current: CompiledStep,
    index: number,
    run: {
      step: WorkflowStep;
      instance: string;
      params: JourneyParams;
      clock: Millis;
      sent: Array<{ step: string; channel: string; sendAt: Millis }>;
    },
  ): Promise<{ index: number; clock: Millis; end?: string }> {
    const { step, clock } = run;
    const name = `${index} ${current.id}`;
    switch (current.kind) {
      case "wait":
        await step.sleep(name, current.ms);
        return { index: index + 1, clock: clock + current.ms };
      case "bestHour": {
        const at = await step.do(`plan ${name}`, STORE_RETRIES, async () =>
          this.bestHourAt((await this.person(run.params.visitorId)).id, clock, null),
        );
        if (at > clock) await step.sleepUntil(name, at);
        return { index: index + 1, clock: Math.max(clock, at) };
      }
      case "waitForEvent": {
        try {
          await step.waitForEvent(name, { type: current.event, timeout: current.timeoutMs });
        } catch {
          // The timeout: nothing arrived in time.
          if (current.onTimeout === "exit")
            return { index, clock: clock + current.timeoutMs, end: `no ${current.event} in time` };
          return { index: index + 1, clock: clock + current.timeoutMs };
        }
        if (current.onEvent === "exit") return { index, clock, end: `event: ${current.event}` };
        return { index: index + 1, clock };
      }
      case "branch": {
        const taken = await step.do(`branch ${name}`, STORE_RETRIES, async () => {
          const rules = await this.rules();
          const visitor = await this.person(run.params.visitorId);
          const facts = await visitor.object.journeyFacts(run.instance);
          const traits = (await readTraits(this.env, visitor.id))?.traits ?? {};
          return rules ? current.test(journeyScope(rules, facts.state, clock, { traits })) : false;
        });
        return { index: taken ? current.onTrue : current.onFalse, clock };
      }
      case "setTrait":
        await step.do(`trait ${name}`, STORE_RETRIES, async () => {
          const visitor = await this.person(run.params.visitorId);
          await setTrait(this.env, visitor.id, current.name, current.value, clock);
          return true;
        });
        return { index: index + 1, clock };
      case "exit":
        return { index, clock, end: "exit step" };
      case "send":
        return this.send(current, index, run);
    }
  }

  /**
   * A message: planned (channel order, the person's hour in their zone, quiet hours), waited for,
   * checked again, then reserved once by the visitor's object, decided by the same engine and rules
   * as a page, and enqueued for delivery. The plan and the delivery are steps of their own (a wait
   * may stand between them), so a retry repeats only its own part.
   */
  private async send(
    current: Extract<CompiledStep, { kind: "send" }>,
    index: number,
    run: Parameters<JourneyWorkflow["runStep"]>[2],
  ): Promise<{ index: number; clock: Millis; end?: string }> {
    const { step, instance, params } = run;
    const name = `${index} ${current.id}`;
    const plan = await step.do(`plan ${name}`, STORE_RETRIES, async () => {
      const visitor = await this.person(params.visitorId);
      const facts = await visitor.object.journeyFacts(instance);
      const order = channelOrder(
        current.via.map((target) => target.channel),
        facts.state.engagement,
      );
      const at = await this.bestHourAt(visitor.id, run.clock, current.bestHourWithinMs, order[0]);
      return { order, at };
    });
    let clock = run.clock;
    if (plan.at > clock) {
      await step.sleepUntil(`wait for the hour ${name}`, plan.at);
      clock = plan.at;
      const recheck = await step.do(`recheck ${name}`, STORE_RETRIES, async () => {
        const rules = await this.rules();
        const journey = rules?.journeys.byId[params.journey];
        if (!rules || !journey) return "journey removed from the rules";
        const visitor = await this.person(params.visitorId);
        const facts = await visitor.object.journeyFacts(instance);
        const traits = (await readTraits(this.env, visitor.id))?.traits ?? {};
        return exitReason(facts, journey, rules, clock, traits);
      });
      if (recheck) return { index, clock, end: recheck };
    }
    const key = `${instance}.${current.id}`;
    // Reserved and enqueued in one step: the reservation is idempotent by key, so a retry of this
    // step finds it ("already", the same channel) and enqueues the same message again, which the
    // consumer and the destination dedupe by that key, as they would a retried enqueue on its own.
    // Refused (cap, consent): not sent, and the journey goes on (the admin API says why).
    const enqueued = await step.do(`deliver ${name}`, STORE_RETRIES, async () => {
      const messaging = (await this.rules())?.journeys.messaging;
      const visitor = await this.person(params.visitorId);
      const reservation = await visitor.object.reserveSend({
        key,
        instance,
        journey: params.journey,
        step: current.id,
        now: clock,
        channels: plan.order,
        capMax: messaging?.capMax ?? 2,
        capPerMs: messaging?.capPerMs ?? 86400e3,
      });
      if (reservation.status === "refused" || reservation.channel === null) return null;
      const channel = reservation.channel;
      const made = await this.message(visitor.id, params, instance, current, channel, key, clock);
      if (!made) return null;
      await this.env.DELIVERY.send(made.message, { contentType: "json" });
      // Handed to delivery: recorded by the person's object (their export, the warehouse's line). A
      // failure here retries the step, which enqueues the same message again (deduped by its key,
      // as above) and records it once.
      await this.recordMessage(visitor.id, made.sent, made.shown);
      return { channel, sendAt: made.message.sendAt };
    });
    if (enqueued) run.sent.push({ step: current.id, ...enqueued });
    return { index: index + 1, clock };
  }

  /**
   * A message handed to delivery, kept by the person's object (which exports it once, if the privacy
   * gate lets them be measured). Unless a dry run (the person sees nothing), its decision is kept like
   * a page's: an experiment it newly assigned stays the person's arm, and counts them once in that
   * experiment, whatever the channel. Idempotent: a retried record adds nothing.
   */
  private async recordMessage(
    visitorId: string,
    sent: SentMessage,
    shown: Pick<DecisionResult, "exposures" | "assignments" | "replacedAssignments">,
  ): Promise<void> {
    const visitor = visitorObject(this.env, visitorId);
    await visitor.messageSent(sent);
    if (sent.dryRun || Object.keys(shown.assignments).length === 0) return;
    const counted = await visitor.recordDecision({
      now: sent.sentAt,
      visitorId,
      // Not the exposures: a message does not count toward an experience's frequency cap (as before).
      exposures: [],
      assignments: shown.assignments,
      replacing: shown.replacedAssignments,
      consentMode: readConfig(this.env).config.CONSENT_MODE,
    });
    if (counted) await countExposures(this.env, visitorId, shown.exposures, shown.assignments, sent.sentAt);
  }

  /**
   * The next time the person's best hour comes, in their zone, if within `withinMs` (null: whenever),
   * pushed past quiet hours; `from` when the hour is unknown or too far.
   */
  private async bestHourAt(
    visitorId: string,
    from: Millis,
    withinMs: number | null,
    channel = "email",
  ): Promise<Millis> {
    const rules = await this.rules();
    if (!rules) return from;
    const state = await visitorObject(this.env, visitorId).snapshot({ now: from });
    const traits = (await readTraits(this.env, visitorId))?.traits ?? {};
    const outbound = decide(rules, {
      visitorId,
      now: from,
      traits,
      state,
      context: outboundContext(channel),
      consent: {},
      placements: [],
    }).outbound;
    const offset = utcOffsetMinutes(outbound?.timezone ?? "UTC", from) ?? 0;
    let at = from;
    if (outbound?.hour !== null && outbound?.hour !== undefined) {
      const hourAt = nextHourAt(from, outbound.hour, offset);
      if (withinMs === null || hourAt - from <= withinMs) at = hourAt;
    }
    return quietUntil(at, rules.journeys.messaging.quiet, offset) ?? at;
  }

  /** The message: the placement's decision for this channel, by the same engine and rules as a page. */
  private async message(
    visitorId: string,
    params: JourneyParams,
    instance: string,
    current: Extract<CompiledStep, { kind: "send" }>,
    channel: string,
    key: string,
    sendAt: Millis,
  ): Promise<{
    message: DeliveryMessage;
    sent: SentMessage;
    shown: Pick<DecisionResult, "exposures" | "assignments" | "replacedAssignments">;
  } | null> {
    const rules = await this.rules();
    const target = current.via.find((via) => via.channel === channel);
    if (!rules || !target) return null;
    const journey = rules.journeys.byId[params.journey];
    const state = await visitorObject(this.env, visitorId).snapshot({ now: sendAt });
    const read = await readTraits(this.env, visitorId);
    const result = decide(rules, {
      visitorId,
      now: sendAt,
      traits: read?.traits ?? {},
      state,
      context: outboundContext(channel),
      consent: { ...(read?.consent ?? {}), personalization: true },
      placements: [target.placement],
    });
    const decision = result.decisions[0];
    if (!decision) return null;
    const message: DeliveryMessage = {
      key,
      visitorId,
      journey: params.journey,
      instance,
      step: current.id,
      channel: target.channel,
      placement: target.placement,
      sendAt,
      rulesVersion: rules.version,
      dryRun: rules.journeys.messaging.dryRun || (journey?.dryRun ?? false),
      decision: { experience: decision.experience, variant: decision.variant, reason: decision.reason },
      content: { html: decision.html, json: decision.json ?? null },
    };
    const arm = result.exposures.find((shown) => shown.placement === target.placement);
    return {
      message,
      sent: {
        key,
        journey: message.journey,
        instance,
        step: message.step,
        channel: message.channel,
        placement: message.placement,
        experience: decision.experience,
        experiment: arm?.experiment ?? null,
        variant: decision.variant,
        rulesVersion: message.rulesVersion,
        dryRun: message.dryRun,
        sentAt: sendAt,
      },
      shown: {
        exposures: result.exposures,
        assignments: result.assignments,
        replacedAssignments: result.replacedAssignments,
      },
    };
  }
}
