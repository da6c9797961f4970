/**
 * A check that a CSS selector is in the subset HTMLRewriter accepts, so a rules author learns of a
 * typo at validation, not when a page is served: type, universal, #id, .class, attribute selectors
 * ([a], [a=v], [a~=v], [a^=v], [a$=v], [a*=v], [a|=v], optional i), :nth-child(an+b),
 * :first-child, :nth-of-type, :first-of-type, :not(simple), descendant and child combinators.
 */
const IDENT = "-?[_a-zA-Z][_a-zA-Z0-9-]*";
const STRING = `"(?:[^"\\\\]|\\\\.)*"|'(?:[^'\\\\]|\\\\.)*'`;
const ATTR = `\\[\\s*${IDENT}\\s*(?:[~^$*|]?=\\s*(?:${IDENT}|${STRING})\\s*(?:\\s[iIsS])?\\s*)?\\]`;
const NTH = `\\(\\s*(?:odd|even|[+-]?\\d*n?\\s*(?:[+-]\\s*\\d+)?)\\s*\\)`;
const SIMPLE = `(?:#${IDENT}|\\.${IDENT}|${ATTR}|:(?:first-child|first-of-type|nth-child${NTH}|nth-of-type${NTH}))`;
const NOT = `:not\\(\\s*(?:${IDENT}|\\*)?${SIMPLE}*\\s*\\)`;
const COMPOUND = `(?:(?:${IDENT}|\\*)(?:${SIMPLE}|${NOT})*|(?:${SIMPLE}|${NOT})+)`;
const SELECTOR = new RegExp(`^\\s*${COMPOUND}(?:\\s*>\\s*${COMPOUND}|\\s+${COMPOUND})*\\s*$`);

export function isSupportedSelector(selector: string): boolean {
  if (selector.length === 0 || selector.length > 500) return false;
  return selector.split(",").every((part) => SELECTOR.test(part));
}
