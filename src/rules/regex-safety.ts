/**
 * Regexes in rules are bounded: short, no backreferences or lookaround, and no quantified group
 * that itself contains a quantifier (`(a+)+`, `((a*))*`, `(?:x+){2,}` — the shape of catastrophic
 * backtracking). A scanner rather than a regex over the pattern, so nesting and escapes are exact.
 */

const MAX_PATTERN_LENGTH = 200;

/** Why a `matches` pattern is refused, or null when it is safe to run on every request. */
export function unsafeRegex(pattern: unknown): string | null {
  if (typeof pattern !== "string") return "matches needs a string pattern";
  if (pattern.length > MAX_PATTERN_LENGTH) return `pattern longer than ${MAX_PATTERN_LENGTH} characters`;
  return backtrackingHazard(pattern) ?? syntaxProblem(pattern);
}

function backtrackingHazard(pattern: string): string | null {
  // One entry per open group: does anything inside it repeat?
  const groupRepeats: boolean[] = [false];
  const markRepeat = () => {
    groupRepeats[groupRepeats.length - 1] = true;
  };
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "(") {
      if (isLookaround(pattern, i)) return "lookaround is not allowed";
      groupRepeats.push(false);
      i++;
    } else if (c === ")") {
      const innerRepeats = groupRepeats.length > 1 ? groupRepeats.pop()! : false;
      i++;
      const quantifier = quantifierLength(pattern, i);
      if (quantifier > 0 && innerRepeats) return "nested quantifiers are not allowed";
      if (quantifier > 0 || innerRepeats) markRepeat();
      i = afterQuantifier(pattern, i, quantifier);
    } else {
      if (c === "\\" && isBackreference(pattern[i + 1] ?? "")) return "backreferences are not allowed";
      i = atomEnd(pattern, i);
      const quantifier = quantifierLength(pattern, i);
      if (quantifier > 0) markRepeat();
      i = afterQuantifier(pattern, i, quantifier);
    }
  }
  return null;
}

/** `\1`…`\9` or `\k<name>`. */
const isBackreference = (escaped: string): boolean => /[1-9]/.test(escaped) || escaped === "k";

/** `(?=`, `(?!`, `(?<=`, `(?<!` at `at`. */
function isLookaround(pattern: string, at: number): boolean {
  if (pattern[at + 1] !== "?") return false;
  const kind = pattern.slice(at + 2, at + 4);
  return kind[0] === "=" || kind[0] === "!" || kind === "<=" || kind === "<!";
}

/** Where the atom at `at` ends: an escape, a character class, or one character. */
function atomEnd(pattern: string, at: number): number {
  if (pattern[at] === "\\") return at + 2;
  if (pattern[at] !== "[") return at + 1;
  let i = at + 1;
  // A leading "^" negates and a "]" right after the opening is a literal, not the end.
  if (pattern[i] === "^") i++;
  if (pattern[i] === "]") i++;
  while (i < pattern.length && pattern[i] !== "]") i += pattern[i] === "\\" ? 2 : 1;
  return i + 1;
}

const BRACES = /^\{\d+(,\d*)?\}/;

/** The length of the quantifier at `at` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`), 0 when none. */
function quantifierLength(pattern: string, at: number): number {
  const c = pattern[at];
  if (c === "*" || c === "+" || c === "?") return 1;
  if (c === "{") return BRACES.exec(pattern.slice(at))?.[0].length ?? 0;
  return 0;
}

/** Past a quantifier and its lazy `?`, if any. */
function afterQuantifier(pattern: string, at: number, quantifier: number): number {
  if (quantifier === 0) return at;
  const end = at + quantifier;
  return pattern[end] === "?" ? end + 1 : end;
}

function syntaxProblem(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch {
    return "not a valid regular expression";
  }
}
