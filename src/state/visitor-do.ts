import { DurableObject } from "cloudflare:workers";

/** One object per canonical visitor. (Being built out in the visitor-state work.) */
export class VisitorDO extends DurableObject {}
