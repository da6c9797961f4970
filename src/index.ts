import { handleConsole, isConsolePath } from "./console/routes.ts";
import { handle } from "./http/app.ts";
import type { Env } from "./platform/env.ts";
import { handleQueue } from "./queues.ts";

export { JourneyWorkflow } from "./journeys/journey-workflow.ts";
export { ExperimentDO } from "./measure/experiment-do.ts";
export { VisitorDO } from "./state/visitor-do.ts";

export default {
  fetch(request, env, ctx) {
    // The console (<NS_PREFIX>/console) is HTML over the API; everything else is the API or a page.
    const url = new URL(request.url);
    if (isConsolePath(url.pathname, env)) return handleConsole(request, env, ctx);
    return handle(request, env, ctx, url);
  },
  queue(batch, env, ctx) {
    return handleQueue(batch, env, ctx);
  },
} satisfies ExportedHandler<Env>;
