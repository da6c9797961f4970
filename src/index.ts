import { handle } from "./http/app.ts";
import type { Env } from "./platform/env.ts";

export { ExperimentDO } from "./measure/experiment-do.ts";
export { VisitorDO } from "./state/visitor-do.ts";

export default {
  fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
