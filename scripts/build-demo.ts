/**
 * Writes the demo shop's pages (demo/site), committed so `npm start` needs no build step.
 * Run again after changing the catalogue: `node scripts/build-demo.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const SITE = new URL("../demo/site", import.meta.url).pathname;

interface Product {
  slug: string;
  name: string;
  price: number;
  category: "running" | "hiking";
  tags: string[];
  blurb: string;
}

const products: Product[] = [
  {
    slug: "trail-runner-2",
    name: "Trail Runner 2",
    price: 129,
    category: "running",
    tags: ["running", "trail", "shoes"],
    blurb: "Grippy, light and stable on wet rock.",
  },
  {
    slug: "road-racer",
    name: "Road Racer",
    price: 149,
    category: "running",
    tags: ["running", "road", "shoes"],
    blurb: "A carbon-plated racer for fast days.",
  },
  {
    slug: "tempo-tee",
    name: "Tempo Tee",
    price: 35,
    category: "running",
    tags: ["running", "apparel"],
    blurb: "Breathable tee that dries in minutes.",
  },
  {
    slug: "pace-shorts",
    name: "Pace Shorts",
    price: 45,
    category: "running",
    tags: ["running", "apparel"],
    blurb: "Five-inch shorts with a zip pocket.",
  },
  {
    slug: "night-vest",
    name: "Night Vest",
    price: 55,
    category: "running",
    tags: ["running", "safety"],
    blurb: "Reflective vest for dark mornings.",
  },
  {
    slug: "hydration-belt",
    name: "Hydration Belt",
    price: 29,
    category: "running",
    tags: ["running", "hydration"],
    blurb: "Two flasks, no bounce.",
  },
  {
    slug: "alpine-boot",
    name: "Alpine Boot",
    price: 219,
    category: "hiking",
    tags: ["hiking", "boots", "alpine"],
    blurb: "Waterproof leather boot for long days.",
  },
  {
    slug: "ridge-pack",
    name: "Ridge Pack 30",
    price: 139,
    category: "hiking",
    tags: ["hiking", "packs"],
    blurb: "A 30-litre pack with a ventilated back.",
  },
  {
    slug: "storm-shell",
    name: "Storm Shell",
    price: 249,
    category: "hiking",
    tags: ["hiking", "apparel", "rain"],
    blurb: "Three-layer shell for real weather.",
  },
  {
    slug: "trek-poles",
    name: "Trek Poles",
    price: 89,
    category: "hiking",
    tags: ["hiking", "poles"],
    blurb: "Carbon poles that fold to 38 cm.",
  },
  {
    slug: "camp-mug",
    name: "Camp Mug",
    price: 19,
    category: "hiking",
    tags: ["hiking", "camp"],
    blurb: "Insulated steel, keeps coffee hot.",
  },
  {
    slug: "wool-socks",
    name: "Wool Socks",
    price: 22,
    category: "hiking",
    tags: ["hiking", "apparel"],
    blurb: "Merino cushioning, no blisters.",
  },
];

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

function layout(
  title: string,
  main: string,
  body: { tags?: string[]; category?: string; product?: string } = {},
): string {
  const attrs = [
    body.tags ? ` data-ns-tags="${esc(body.tags.join(","))}"` : "",
    body.category ? ` data-ns-category="${body.category}"` : "",
    body.product ? ` data-ns-product="${body.product}"` : "",
  ].join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Summit &amp; Stride</title>
<link rel="stylesheet" href="/assets/shop.css">
</head>
<body${attrs}>
<header class="site-header">
  <a class="logo" href="/">Summit &amp; Stride</a>
  <nav><a href="/">Home</a><a href="/running">Running</a><a href="/hiking">Hiking</a><a href="/cart">Cart</a></nav>
</header>
<main>
<div id="promo-banner"></div>
${main}
</main>
<footer class="site-footer"><p>Summit &amp; Stride · outdoor gear since 2009 · <a href="/">Home</a></p></footer>
</body>
</html>
`;
}

function card(p: Product): string {
  return `<li class="card"><a href="/${p.category}/${p.slug}"><img src="/assets/img/${p.category}.svg" alt="" width="160" height="120"><h3>${esc(p.name)}</h3></a><p>${esc(p.blurb)}</p><span class="price">$${p.price}</span></li>`;
}

function write(path: string, html: string): void {
  const file = join(SITE, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, html);
}

write(
  "index.html",
  layout(
    "Home",
    `<section id="hero" class="hero"><h1>Gear for every trail</h1><p>Running and hiking essentials, tested by people who use them.</p><a class="cta" href="/running">Shop now</a></section>
<section class="featured"><h2>Featured</h2><ul class="grid">${products
      .filter((_, i) => i % 3 === 0)
      .map(card)
      .join("")}</ul></section>`,
  ),
);

for (const category of ["running", "hiking"] as const) {
  const title = category === "running" ? "Running" : "Hiking";
  write(
    `${category}/index.html`,
    layout(
      title,
      `<section id="category-hero" class="category-hero"><h1>${title}</h1><p>${category === "running" ? "Shoes and kit for road and trail." : "Boots, packs and shells for the mountains."}</p></section>
<ul class="grid">${products
        .filter((p) => p.category === category)
        .map(card)
        .join("")}</ul>`,
      { tags: [category], category },
    ),
  );
  for (const p of products.filter((x) => x.category === category)) {
    write(
      `${category}/${p.slug}.html`,
      layout(
        p.name,
        `<article class="product"><img src="/assets/img/${category}.svg" alt="${esc(p.name)}" width="320" height="240">
<div><h1>${esc(p.name)}</h1><p class="price">$${p.price}</p><p>${esc(p.blurb)}</p>
<button class="buy" data-ns-event="add_to_cart" data-ns-product="${p.slug}" data-ns-category="${category}" data-ns-tags="${esc(p.tags.join(","))}" data-ns-value="${p.price}">Add to cart</button></div></article>
<div id="recommendations"></div>`,
        { tags: p.tags, category, product: p.slug },
      ),
    );
  }
}

write(
  "cart.html",
  layout(
    "Cart",
    `<section class="cart"><h1>Your cart</h1><table><tr><td>Trail Runner 2</td><td>$129</td></tr><tr><td>Tempo Tee</td><td>$35</td></tr><tr><th>Total</th><th>$164</th></tr></table>
<button class="buy" data-ns-event="purchase" data-ns-value="164">Checkout</button></section>`,
  ),
);
write(
  "404.html",
  layout(
    "Not found",
    `<section class="hero"><h1>Page not found</h1><p><a href="/">Back home</a></p></section>`,
  ),
);

// A ~100 KB catalogue page for benchmarks: realistic markup, the same slots as the home page.
const rows: string[] = [];
for (let i = 0; rows.join("").length < 95_000; i++)
  rows.push(
    card({ ...products[i % products.length]!, name: `${products[i % products.length]!.name} #${i}` }),
  );
write(
  "big.html",
  layout(
    "Catalogue",
    `<section id="hero" class="hero"><h1>Gear for every trail</h1><p>The whole catalogue.</p><a class="cta" href="/running">Shop now</a></section><ul class="grid">${rows.join("\n")}</ul>`,
  ),
);

write(
  "assets/shop.css",
  `:root{--ink:#1d2a26;--accent:#1f7a5a;--sand:#f4f1ea}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:var(--ink);background:#fff}
.site-header{display:flex;justify-content:space-between;align-items:center;padding:1rem 2rem;background:var(--ink)}
.site-header a{color:#fff;text-decoration:none;margin-left:1rem}.logo{font-weight:700;margin-left:0!important}
main{max-width:64rem;margin:0 auto;padding:1rem 2rem}
.hero,.category-hero{background:var(--sand);padding:3rem 2rem;border-radius:12px;margin:1rem 0}
.cta,.buy{display:inline-block;background:var(--accent);color:#fff;padding:.6rem 1.2rem;border-radius:6px;border:0;text-decoration:none;cursor:pointer}
.grid{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:1rem}
.card{border:1px solid #e3e0d8;border-radius:10px;padding:1rem}.card a{color:inherit;text-decoration:none}
.price{font-weight:700;color:var(--accent)}.product{display:flex;gap:2rem;align-items:flex-start}
.banner{padding:.8rem 1rem;border-radius:8px;margin:.5rem 0;background:#fff4d6}.banner-cart{background:#ffe3e0}.banner-vip{background:#e6f4ee}
.recs{list-style:none;padding:0;display:flex;gap:1rem}.site-footer{text-align:center;color:#667;padding:2rem}
`,
);
for (const [name, color] of [
  ["running", "#1f7a5a"],
  ["hiking", "#7a5a1f"],
  ["trail", "#3a5a7a"],
  ["runner", "#1f5a7a"],
] as const) {
  write(
    `assets/img/${name}.svg`,
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 120"><rect width="160" height="120" fill="#f4f1ea"/><path d="M0 100 L50 40 L80 70 L110 30 L160 100 Z" fill="${color}"/><circle cx="130" cy="25" r="10" fill="#e8b84a"/></svg>\n`,
  );
}
console.log(`wrote the demo shop to ${SITE}`);
