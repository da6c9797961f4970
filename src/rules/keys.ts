/** The RULES KV namespace's keys (docs/storage.md has JSON examples). */
export const ACTIVE_KEY = "rules:active";
export const HISTORY_KEY = "rules:history";
export const versionKey = (version: string) => `rules:v:${version}`;
