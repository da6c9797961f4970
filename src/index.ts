import { handle } from "./http/app.ts";
import type { Env } from "./platform/env.ts";
import { handleQueue } from "./queues.ts";

export { ExperimentDO } from "./measure/experiment-do.ts";
export { VisitorDO } from "./state/visitor-do.ts";

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
  queue(batch, env, ctx) {
    return handleQueue(batch, env, ctx);
  },
} satisfies ExportedHandler<Env>;
