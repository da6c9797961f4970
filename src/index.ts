import { handle } from "./http/app.ts";
import { consumeQueue } from "./journeys/queues.ts";
import type { Env } from "./platform/env.ts";

export { JourneyWorkflow } from "./journeys/journey-workflow.ts";
export { ExperimentDO } from "./measure/experiment-do.ts";
export { VisitorDO } from "./state/visitor-do.ts";

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
  queue(batch, env) {
    return consumeQueue(batch, env);
  },
} satisfies ExportedHandler<Env>;
