/**
 * A line diff of two texts (the pretty-printed JSON of two rules versions): the common head and
 * tail are cut first, the rest is a longest common subsequence, shown as hunks with `context`
 * unchanged lines around each change. Rules documents differ in few lines, so the quadratic middle
 * stays small; past MAX_CELLS it is shown as one replaced block rather than spend the request's CPU.
 */
export type DiffLine = { readonly kind: " " | "+" | "-"; readonly text: string; readonly at: number };
export interface Hunk {
  /** 1-based first line of the hunk in the old text. */
  readonly start: number;
  readonly lines: readonly DiffLine[];
}

const MAX_CELLS = 4_000_000;

export function diffLines(before: string, after: string, context = 3): Hunk[] {
  const a = before.split("\n");
  const b = after.split("\n");
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++;
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  const lines: DiffLine[] = a.slice(0, head).map((text, i) => ({ kind: " ", text, at: i + 1 }));
  for (const line of middle(midA, midB)) lines.push({ ...line, at: line.at + head });
  a.slice(a.length - tail).forEach((text, i) => {
    lines.push({ kind: " ", text, at: a.length - tail + i + 1 });
  });
  return hunks(lines, context);
}

function middle(a: readonly string[], b: readonly string[]): DiffLine[] {
  if (a.length * b.length > MAX_CELLS) {
    return [
      ...a.map((text, i) => ({ kind: "-" as const, text, at: i + 1 })),
      ...b.map((text) => ({ kind: "+" as const, text, at: a.length })),
    ];
  }
  // lcs[i][j]: the longest common subsequence of a[i..] and b[j..], in one flat array.
  const w = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * w);
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i * w + j] =
        a[i] === b[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push({ kind: " ", text: a[i]!, at: i + 1 });
      i++;
      j++;
    } else if (i < a.length && (j === b.length || lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) {
      // On a tie the old line goes first: a changed line reads as "-" then "+".
      out.push({ kind: "-", text: a[i]!, at: i + 1 });
      i++;
    } else {
      out.push({ kind: "+", text: b[j]!, at: i });
      j++;
    }
  }
  return out;
}

function hunks(lines: readonly DiffLine[], context: number): Hunk[] {
  const changed = lines.flatMap((l, i) => (l.kind === " " ? [] : [i]));
  const out: Hunk[] = [];
  let from = -1;
  let to = -1;
  const flush = () => {
    if (from >= 0) out.push({ start: lines[from]!.at, lines: lines.slice(from, to + 1) });
  };
  for (const i of changed) {
    const lo = Math.max(0, i - context);
    const hi = Math.min(lines.length - 1, i + context);
    if (from >= 0 && lo <= to + 1) to = hi;
    else {
      flush();
      from = lo;
      to = hi;
    }
  }
  flush();
  return out;
}
