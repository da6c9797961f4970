/**
 * Writes the demo shop "Summit & Stride" (demo/site): its pages, one stylesheet and small SVG
 * product pictures. The output is committed so `npm start` needs no build step; run this again
 * after changing the catalogue: `node scripts/build-demo.ts`.
 *
 * Every page has `<div id="promo-banner">` at the top of `<main>`; the home page and /big have the
 * `#hero` slot, category pages `#category-hero`, product pages `#recommendations`. Pages carry
 * `data-ns-*` marks (on `<body>` and on the buttons that matter) for the beacon, which the proxy
 * injects: the pages never include it themselves.
 */
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const SITE = new URL("../demo/site", import.meta.url).pathname;

type Category = "running" | "hiking";
type Shape =
  | "shoe"
  | "boot"
  | "tee"
  | "shorts"
  | "vest"
  | "belt"
  | "pack"
  | "shell"
  | "poles"
  | "mug"
  | "socks";

interface Product {
  slug: string;
  name: string;
  price: number;
  category: Category;
  tags: string[];
  blurb: string;
  description: string;
  specs: Array<[string, string]>;
  sizes: string[];
  colors: string[];
  rating: number;
  reviews: number;
  shape: Shape;
  /** Main colour of its picture. */
  ink: string;
}

const products: Product[] = [
  {
    slug: "trail-runner-2",
    name: "Trail Runner 2",
    price: 129,
    category: "running",
    tags: ["running", "trail", "shoes"],
    blurb: "Grippy, light and stable on wet rock.",
    description:
      "Our best-selling trail shoe, rebuilt with a 4 mm lugged outsole that bites into mud and wet granite, a rock plate under the forefoot and a roomy toe box for long descents.",
    specs: [
      ["Weight", "285 g (US 9)"],
      ["Drop", "6 mm"],
      ["Stack", "30 / 24 mm"],
      ["Outsole", "4 mm lugs, sticky rubber"],
    ],
    sizes: ["7", "8", "9", "10", "11", "12"],
    colors: ["Moss", "Slate", "Ember"],
    rating: 4.7,
    reviews: 412,
    shape: "shoe",
    ink: "#2f6b4f",
  },
  {
    slug: "road-racer",
    name: "Road Racer",
    price: 149,
    category: "running",
    tags: ["running", "road", "shoes"],
    blurb: "A carbon-plated racer for fast days.",
    description:
      "A full-length carbon plate and a bouncy foam for tempo runs and race day. Light mesh upper, a padded heel and a flat lace-up that stays put over 42 km.",
    specs: [
      ["Weight", "210 g (US 9)"],
      ["Drop", "8 mm"],
      ["Stack", "39 / 31 mm"],
      ["Plate", "Full-length carbon"],
    ],
    sizes: ["7", "8", "9", "10", "11", "12"],
    colors: ["Volt", "White"],
    rating: 4.5,
    reviews: 268,
    shape: "shoe",
    ink: "#c8462c",
  },
  {
    slug: "tempo-tee",
    name: "Tempo Tee",
    price: 35,
    category: "running",
    tags: ["running", "apparel"],
    blurb: "Breathable tee that dries in minutes.",
    description:
      "A soft recycled-polyester knit with laser-cut vents down the back. Flat seams, no tag, and a fit that stays off your shoulders when you swing your arms.",
    specs: [
      ["Fabric", "100% recycled polyester"],
      ["Weight", "95 g (M)"],
      ["Fit", "Regular"],
    ],
    sizes: ["XS", "S", "M", "L", "XL"],
    colors: ["Sky", "Charcoal", "Coral"],
    rating: 4.4,
    reviews: 190,
    shape: "tee",
    ink: "#3d7fb8",
  },
  {
    slug: "pace-shorts",
    name: "Pace Shorts",
    price: 45,
    category: "running",
    tags: ["running", "apparel"],
    blurb: "Five-inch shorts with a zip pocket.",
    description:
      "Five-inch split shorts with a brief liner, a zip pocket that holds a phone without bouncing and two gel loops on the waistband.",
    specs: [
      ["Inseam", "5 in / 13 cm"],
      ["Pockets", "1 zip, 2 gel loops"],
      ["Liner", "Brief"],
    ],
    sizes: ["S", "M", "L", "XL"],
    colors: ["Black", "Navy"],
    rating: 4.6,
    reviews: 154,
    shape: "shorts",
    ink: "#26324a",
  },
  {
    slug: "night-vest",
    name: "Night Vest",
    price: 55,
    category: "running",
    tags: ["running", "safety"],
    blurb: "Reflective vest for dark mornings.",
    description:
      "A featherweight mesh vest with 360° reflective bands and a clip for a rear light, so drivers see you from 200 m on dark winter mornings.",
    specs: [
      ["Weight", "80 g"],
      ["Visibility", "360° reflective, 200 m"],
      ["Adjust", "Elastic side straps"],
    ],
    sizes: ["S/M", "L/XL"],
    colors: ["Hi-vis yellow"],
    rating: 4.3,
    reviews: 88,
    shape: "vest",
    ink: "#d6c22b",
  },
  {
    slug: "hydration-belt",
    name: "Hydration Belt",
    price: 29,
    category: "running",
    tags: ["running", "hydration"],
    blurb: "Two flasks, no bounce.",
    description:
      "A wide, soft belt that carries two 250 ml soft flasks at the hips and a phone at the back, without bouncing at any pace.",
    specs: [
      ["Capacity", "2 × 250 ml flasks (included)"],
      ["Weight", "120 g"],
      ["Fits", "Waist 66–100 cm"],
    ],
    sizes: ["One size"],
    colors: ["Black"],
    rating: 4.2,
    reviews: 73,
    shape: "belt",
    ink: "#3b3f46",
  },
  {
    slug: "alpine-boot",
    name: "Alpine Boot",
    price: 219,
    category: "hiking",
    tags: ["hiking", "boots", "alpine"],
    blurb: "Waterproof leather boot for long days.",
    description:
      "A full-grain leather boot with a waterproof membrane, a stiff midsole for scree and a rubber rand that shrugs off rocks. Built to be resoled.",
    specs: [
      ["Weight", "720 g (US 9)"],
      ["Membrane", "Waterproof, breathable"],
      ["Sole", "Vibram-style, resolable"],
      ["Crampons", "Strap-on compatible"],
    ],
    sizes: ["7", "8", "9", "10", "11", "12", "13"],
    colors: ["Walnut", "Graphite"],
    rating: 4.8,
    reviews: 356,
    shape: "boot",
    ink: "#7a4a24",
  },
  {
    slug: "ridge-pack",
    name: "Ridge Pack 30",
    price: 139,
    category: "hiking",
    tags: ["hiking", "packs"],
    blurb: "A 30-litre pack with a ventilated back.",
    description:
      "A 30-litre day pack with a suspended mesh back, a hip belt with pockets, a rain cover in the lid and a sleeve for a 2-litre reservoir.",
    specs: [
      ["Volume", "30 L"],
      ["Weight", "1.1 kg"],
      ["Back", "Suspended mesh"],
      ["Extras", "Rain cover, pole loops"],
    ],
    sizes: ["S/M", "M/L"],
    colors: ["Forest", "Rust"],
    rating: 4.6,
    reviews: 221,
    shape: "pack",
    ink: "#35603e",
  },
  {
    slug: "storm-shell",
    name: "Storm Shell",
    price: 249,
    category: "hiking",
    tags: ["hiking", "apparel", "rain"],
    blurb: "Three-layer shell for real weather.",
    description:
      "A three-layer waterproof shell with taped seams, pit zips and a helmet-compatible hood that turns with your head. Packs into its own chest pocket.",
    specs: [
      ["Waterproof", "20,000 mm"],
      ["Breathability", "20,000 g/m²/24h"],
      ["Weight", "390 g (M)"],
    ],
    sizes: ["XS", "S", "M", "L", "XL", "XXL"],
    colors: ["Glacier", "Black", "Signal orange"],
    rating: 4.7,
    reviews: 305,
    shape: "shell",
    ink: "#d0652a",
  },
  {
    slug: "trek-poles",
    name: "Trek Poles",
    price: 89,
    category: "hiking",
    tags: ["hiking", "poles"],
    blurb: "Carbon poles that fold to 38 cm.",
    description:
      "Three-section carbon poles that fold to 38 cm, with cork grips, an extended foam section for steep traverses and quick-lock length adjustment.",
    specs: [
      ["Length", "110–130 cm"],
      ["Folded", "38 cm"],
      ["Weight", "340 g (pair)"],
    ],
    sizes: ["110–130 cm"],
    colors: ["Carbon"],
    rating: 4.5,
    reviews: 97,
    shape: "poles",
    ink: "#2c2f33",
  },
  {
    slug: "camp-mug",
    name: "Camp Mug",
    price: 19,
    category: "hiking",
    tags: ["hiking", "camp"],
    blurb: "Insulated steel, keeps coffee hot.",
    description:
      "A double-wall stainless mug with a sliding lid that keeps coffee hot for an hour at a cold summit. Dishwasher safe, and it nests on a 1 L pot.",
    specs: [
      ["Capacity", "350 ml"],
      ["Weight", "210 g"],
      ["Material", "Double-wall stainless steel"],
    ],
    sizes: ["350 ml"],
    colors: ["Sage", "Sand"],
    rating: 4.8,
    reviews: 512,
    shape: "mug",
    ink: "#7f9a7a",
  },
  {
    slug: "wool-socks",
    name: "Wool Socks",
    price: 22,
    category: "hiking",
    tags: ["hiking", "apparel"],
    blurb: "Merino cushioning, no blisters.",
    description:
      "Mid-weight merino hiking socks with cushioning under the heel and toes, a seamless toe and an arch band that keeps them from twisting in the boot.",
    specs: [
      ["Fabric", "63% merino, 34% nylon, 3% elastane"],
      ["Height", "Crew"],
      ["Cushion", "Medium"],
    ],
    sizes: ["S", "M", "L", "XL"],
    colors: ["Heather grey", "Mustard"],
    rating: 4.9,
    reviews: 640,
    shape: "socks",
    ink: "#8a8f99",
  },
];

const CATEGORIES: Record<Category, { title: string; lede: string; tags: string[] }> = {
  running: {
    title: "Running",
    lede: "Shoes and kit for road and trail, chosen by runners who log real miles.",
    tags: ["Trail", "Road", "Apparel", "Safety", "Hydration"],
  },
  hiking: {
    title: "Hiking",
    lede: "Boots, packs and shells for the mountains, built to last for seasons.",
    tags: ["Boots", "Packs", "Rain", "Poles", "Camp"],
  },
};

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const money = (n: number) => `$${n.toFixed(2)}`;
const stars = (r: number) =>
  `<span class="stars" aria-label="${r} out of 5">${"★".repeat(Math.round(r))}${"☆".repeat(5 - Math.round(r))}</span>`;
const url = (p: Product) => `/${p.category}/${p.slug}`;

interface BodyMarks {
  tags?: string[];
  category?: string;
  product?: string;
}

function layout(
  title: string,
  description: string,
  main: string,
  body: BodyMarks = {},
  current = "",
): string {
  const attrs = [
    body.tags ? ` data-ns-tags="${esc(body.tags.join(","))}"` : "",
    body.category ? ` data-ns-category="${esc(body.category)}"` : "",
    body.product ? ` data-ns-product="${esc(body.product)}"` : "",
  ].join("");
  const nav = [
    ["/", "Home"],
    ["/running", "Running"],
    ["/hiking", "Hiking"],
    ["/cart", "Cart"],
  ]
    .map(([href, label]) => `<a href="${href}"${href === current ? ' aria-current="page"' : ""}>${label}</a>`)
    .join("");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Summit &amp; Stride</title>
<meta name="description" content="${esc(description)}">
<link rel="icon" href="/assets/img/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/shop.css">
</head>
<body${attrs}>
<a class="skip" href="#content">Skip to content</a>
<header class="site-header">
  <a class="logo" href="/"><img src="/assets/img/favicon.svg" alt="" width="28" height="28">Summit &amp; Stride</a>
  <nav aria-label="Main">${nav}</nav>
</header>
<main id="content">
<div id="promo-banner"></div>
${main}
</main>
<footer class="site-footer">
  <div class="footer-cols">
    <section><h2>Shop</h2><ul><li><a href="/running">Running</a></li><li><a href="/hiking">Hiking</a></li><li><a href="/big">Full catalogue</a></li></ul></section>
    <section><h2>Help</h2><ul><li>Free returns within 60 days</li><li>Shipping in 1–2 working days</li><li>help@summitandstride.example</li></ul></section>
    <section><h2>Visit us</h2><p>12 Quarry Lane, Boulder, CO<br>Mon–Sat, 9:00–18:00</p></section>
  </div>
  <p class="fineprint">© 2009–2026 Summit &amp; Stride · outdoor gear since 2009 · a demo shop for Northstar</p>
</footer>
</body>
</html>
`;
}

function card(p: Product, label = p.name): string {
  return `<li class="card"><a href="${url(p)}"><img src="/assets/img/${p.slug}.svg" alt="" width="160" height="120" loading="lazy"><h3>${esc(label)}</h3></a><p>${esc(p.blurb)}</p><p class="meta">${stars(p.rating)} <span class="reviews">${p.reviews} reviews</span></p><span class="price">${money(p.price)}</span></li>`;
}

function breadcrumbs(trail: Array<[string, string]>): string {
  return `<nav class="crumbs" aria-label="Breadcrumb"><ol>${trail
    .map(([href, label], i) =>
      i === trail.length - 1
        ? `<li aria-current="page">${esc(label)}</li>`
        : `<li><a href="${href}">${esc(label)}</a></li>`,
    )
    .join("")}</ol></nav>`;
}

// ---- writing ----------------------------------------------------------------------------------

const written = new Set<string>();
function write(path: string, text: string): void {
  const file = join(SITE, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  written.add(path);
}

// ---- pages --------------------------------------------------------------------------------------

const bySlug = (slug: string) => products.find((p) => p.slug === slug)!;
const featured = ["trail-runner-2", "alpine-boot", "storm-shell", "road-racer"].map(bySlug);

write(
  "index.html",
  layout(
    "Home",
    "Running and hiking gear, tested by people who use it. Free returns within 60 days.",
    `<section id="hero" class="hero"><h1>Gear for every trail</h1><p>Running and hiking essentials, tested by people who use them.</p><a class="cta" href="/running">Shop now</a></section>
<section class="tiles" aria-label="Shop by activity">
  <a class="tile" href="/running"><img src="/assets/img/running.svg" alt="" width="160" height="120"><span>Running</span></a>
  <a class="tile" href="/hiking"><img src="/assets/img/hiking.svg" alt="" width="160" height="120"><span>Hiking</span></a>
</section>
<section class="featured"><h2>Featured this week</h2><ul class="grid">${featured.map((p) => card(p)).join("")}</ul></section>
<section class="promises"><ul><li><strong>Free returns</strong> within 60 days, worn or not.</li><li><strong>Tested outdoors</strong> by our staff on local trails.</li><li><strong>Repairs for life</strong> on every pack and shell.</li></ul></section>`,
    {},
    "/",
  ),
);

for (const category of ["running", "hiking"] as const) {
  const info = CATEGORIES[category];
  const items = products.filter((p) => p.category === category);
  write(
    `${category}/index.html`,
    layout(
      info.title,
      info.lede,
      `${breadcrumbs([
        ["/", "Home"],
        [`/${category}`, info.title],
      ])}
<section id="category-hero" class="category-hero"><h1>${info.title}</h1><p>${esc(info.lede)}</p></section>
<div class="filters" aria-label="Popular">${info.tags.map((t) => `<span class="chip">${t}</span>`).join("")}<span class="count">${items.length} products</span></div>
<ul class="grid">${items.map((p) => card(p)).join("")}</ul>`,
      { tags: [category], category },
      `/${category}`,
    ),
  );
  for (const p of items) {
    write(
      `${category}/${p.slug}.html`,
      layout(
        p.name,
        `${p.name}: ${p.blurb}`,
        `${breadcrumbs([
          ["/", "Home"],
          [`/${category}`, info.title],
          [url(p), p.name],
        ])}
<article class="product">
  <img src="/assets/img/${p.slug}.svg" alt="${esc(p.name)}" width="320" height="240">
  <div class="buybox">
    <h1>${esc(p.name)}</h1>
    <p class="meta">${stars(p.rating)} <span class="reviews">${p.rating} · ${p.reviews} reviews</span></p>
    <p class="price">${money(p.price)}</p>
    <p>${esc(p.blurb)}</p>
    <label>Colour <select name="color">${p.colors.map((c) => `<option>${esc(c)}</option>`).join("")}</select></label>
    <label>Size <select name="size">${p.sizes.map((s) => `<option>${esc(s)}</option>`).join("")}</select></label>
    <button type="button" class="buy" data-ns-event="add_to_cart" data-ns-product="${p.slug}" data-ns-category="${category}" data-ns-tags="${esc(p.tags.join(","))}" data-ns-value="${p.price}">Add to cart</button>
    <p class="note">In stock · ships in 1–2 working days · free returns</p>
  </div>
</article>
<section class="details"><h2>Details</h2><p>${esc(p.description)}</p>
<table class="specs">${p.specs.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table></section>
<div id="recommendations"></div>`,
        { tags: p.tags, category, product: p.slug },
        `/${category}`,
      ),
    );
  }
}

const cartLines: Array<[Product, string, number]> = [
  [bySlug("trail-runner-2"), "Moss · US 9", 1],
  [bySlug("tempo-tee"), "Sky · M", 1],
];
const subtotal = cartLines.reduce((sum, [p, , n]) => sum + p.price * n, 0);
write(
  "cart.html",
  layout(
    "Cart",
    "Your cart at Summit & Stride.",
    `<section class="cart"><h1>Your cart</h1>
<table class="cart-lines"><thead><tr><th scope="col">Item</th><th scope="col">Qty</th><th scope="col">Price</th></tr></thead><tbody>
${cartLines
  .map(
    ([p, variant, n]) =>
      `<tr><td><a href="${url(p)}"><img src="/assets/img/${p.slug}.svg" alt="" width="64" height="48">${esc(p.name)}</a><small>${esc(variant)}</small></td><td>${n}</td><td>${money(p.price * n)}</td></tr>`,
  )
  .join("\n")}
</tbody><tfoot><tr><th scope="row" colspan="2">Subtotal</th><td>${money(subtotal)}</td></tr><tr><th scope="row" colspan="2">Shipping</th><td>Free</td></tr><tr class="total"><th scope="row" colspan="2">Total</th><td>${money(subtotal)}</td></tr></tfoot></table>
<div class="cart-actions"><a href="/running">Continue shopping</a><button type="button" class="buy" data-ns-event="purchase" data-ns-value="${subtotal}" data-ns-currency="USD" data-ns-tags="running,trail,shoes,apparel">Checkout</button></div>
</section>`,
    {},
    "/cart",
  ),
);

write(
  "404.html",
  layout(
    "Page not found",
    "This page does not exist.",
    `<section class="hero notfound"><h1>Off the map</h1><p>We could not find that page. It may have moved, or the trail ends here.</p><a class="cta" href="/">Back to the shop</a></section>`,
  ),
);

// /big: a ~100 KB catalogue for benchmarks, realistic markup, with the home page's slots.
const big: string[] = [];
let bigBytes = 0;
for (let i = 0; bigBytes < 97_000; i++) {
  const p = products[i % products.length]!;
  const color = p.colors[Math.floor(i / products.length) % p.colors.length]!;
  const row = card(p, `${p.name} — ${color}`);
  big.push(row);
  bigBytes += Buffer.byteLength(row) + 1;
}
write(
  "big.html",
  layout(
    "Full catalogue",
    "Every product we sell, in every colour.",
    `<section id="hero" class="hero"><h1>Gear for every trail</h1><p>The whole catalogue, every colour in stock.</p><a class="cta" href="/running">Shop now</a></section>
<div class="filters"><span class="chip">Running</span><span class="chip">Hiking</span><span class="count">${big.length} items</span></div>
<ul class="grid">
${big.join("\n")}
</ul>`,
    { tags: ["catalogue"] },
  ),
);

// ---- stylesheet ------------------------------------------------------------------------------------

write(
  "assets/shop.css",
  `/* Summit & Stride: one stylesheet for the whole shop. */
:root{--ink:#1d2a26;--muted:#5b6661;--accent:#1f7a5a;--accent-dark:#175c44;--sand:#f4f1ea;--line:#e3e0d8;--warm:#fff4d6}
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);background:#fff}
img{max-width:100%;height:auto}
a{color:var(--accent)}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:10}
.site-header{display:flex;justify-content:space-between;align-items:center;gap:1rem;padding:.9rem 2rem;background:var(--ink)}
.site-header a{color:#fff;text-decoration:none}
.site-header nav a{margin-left:1.2rem;opacity:.85}.site-header nav a:hover,.site-header nav a[aria-current]{opacity:1;text-decoration:underline}
.logo{display:flex;align-items:center;gap:.5rem;font-weight:700;letter-spacing:.02em}
main{max-width:68rem;margin:0 auto;padding:1rem 2rem 3rem}
h1,h2,h3{line-height:1.2}
.crumbs ol{list-style:none;display:flex;gap:.4rem;padding:0;margin:.5rem 0;font-size:.9rem;color:var(--muted)}
.crumbs li+li::before{content:"/";margin-right:.4rem}
.hero,.category-hero{background:linear-gradient(120deg,var(--sand),#e9efe6);padding:3rem 2.5rem;border-radius:14px;margin:1rem 0}
.hero h1{font-size:2.4rem;margin:0 0 .5rem}.hero p{max-width:36rem;color:var(--muted)}
.cta,.buy{display:inline-block;background:var(--accent);color:#fff;padding:.65rem 1.3rem;border-radius:8px;border:0;font:inherit;font-weight:600;text-decoration:none;cursor:pointer}
.cta:hover,.buy:hover{background:var(--accent-dark)}
.tiles{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.tile{position:relative;display:block;border-radius:12px;overflow:hidden;background:var(--sand)}
.tile img{width:100%;display:block;aspect-ratio:16/7;object-fit:cover;object-position:bottom}.tile span{position:absolute;left:1rem;bottom:.8rem;font-size:1.4rem;font-weight:700;color:#fff;text-shadow:0 1px 3px #0008}
.grid{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:1rem}
.card{border:1px solid var(--line);border-radius:12px;padding:1rem;background:#fff}
.card a{color:inherit;text-decoration:none}.card img{width:100%;border-radius:8px;background:var(--sand)}
.card h3{margin:.6rem 0 .2rem;font-size:1.05rem}.card p{margin:.2rem 0;color:var(--muted);font-size:.92rem}
.meta{font-size:.9rem}.stars{color:#d39b1b;letter-spacing:.05em}.reviews{color:var(--muted)}
.price{font-weight:700;color:var(--accent);font-size:1.1rem}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:1rem 0}
.chip{border:1px solid var(--line);border-radius:999px;padding:.2rem .8rem;font-size:.9rem}.count{margin-left:auto;color:var(--muted)}
.product{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:2rem;align-items:start;margin-top:1rem}
.product img{width:100%;border-radius:14px;background:var(--sand)}
.buybox h1{margin:0 0 .3rem}.buybox .price{font-size:1.6rem;margin:.4rem 0}
.buybox label{display:block;margin:.6rem 0;font-size:.95rem}.buybox select{margin-left:.5rem;padding:.3rem;font:inherit}
.note{color:var(--muted);font-size:.9rem}
.details{max-width:44rem;margin-top:2rem}.specs{border-collapse:collapse;width:100%}.specs th,.specs td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line)}
.specs th{width:35%;color:var(--muted);font-weight:500}
.promises ul{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem}
.promises li{background:var(--sand);border-radius:10px;padding:1rem}
.cart-lines{width:100%;border-collapse:collapse}.cart-lines th,.cart-lines td{padding:.6rem;border-bottom:1px solid var(--line);text-align:left}
.cart-lines td a{display:flex;align-items:center;gap:.6rem;color:inherit}.cart-lines small{display:block;color:var(--muted)}
.cart-lines .total{font-size:1.15rem;font-weight:700}
.cart-actions{display:flex;justify-content:space-between;align-items:center;margin-top:1.5rem}
/* Personalized fragments the proxy swaps in */
.banner{padding:.8rem 1rem;border-radius:10px;margin:.5rem 0;background:var(--warm)}
.banner-cart{background:#ffe3e0}.banner-offer{background:var(--warm)}.banner-vip{background:#e6f4ee}
.recs{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
.recs li{border:1px solid var(--line);border-radius:10px;padding:.7rem 1rem}
.nudge{background:var(--warm);border-radius:8px;padding:.6rem 1rem}
.site-footer{background:var(--sand);color:var(--muted);padding:2rem;margin-top:2rem}
.footer-cols{max-width:68rem;margin:0 auto;display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:1.5rem}
.site-footer h2{font-size:1rem;color:var(--ink)}.site-footer ul{list-style:none;padding:0;margin:0}.site-footer li{margin:.3rem 0}
.fineprint{text-align:center;font-size:.85rem;margin-top:2rem}
@media (max-width:40rem){.product,.tiles{grid-template-columns:1fr}.hero{padding:2rem 1.2rem}.hero h1{font-size:1.8rem}main{padding:1rem}}
`,
);

// ---- pictures ---------------------------------------------------------------------------------------

const svg = (body: string, bg = "#f4f1ea") =>
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 120"><rect width="160" height="120" fill="${bg}"/>${body}</svg>\n`;

// Scenes for categories and campaigns (trail.svg and runner.svg are named by the rules' JSON content).
for (const [name, color] of [
  ["running", "#1f7a5a"],
  ["hiking", "#7a5a1f"],
  ["trail", "#3a5a7a"],
  ["runner", "#1f5a7a"],
] as const) {
  write(
    `assets/img/${name}.svg`,
    svg(
      `<path d="M0 100 L50 40 L80 70 L110 30 L160 100 Z" fill="${color}"/><path d="M0 100 Q40 88 80 100 T160 100 V120 H0 Z" fill="#d9d2c3"/><circle cx="130" cy="25" r="10" fill="#e8b84a"/>`,
    ),
  );
}
write(
  "assets/img/favicon.svg",
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1f7a5a"/><path d="M4 25 L13 10 L18 18 L22 12 L28 25 Z" fill="#fff"/></svg>\n`,
);

/** Simple flat product pictures, one per product, in its main colour. */
const shapes: Record<Shape, (ink: string) => string> = {
  shoe: (c) =>
    `<path d="M22 78 C22 60 34 52 46 50 L62 46 L78 62 C96 66 118 68 134 76 C142 80 142 88 136 90 L26 90 C22 90 22 84 22 78 Z" fill="${c}"/><path d="M22 88 H138 V94 H22 Z" fill="#eee"/><path d="M62 54 L70 62 M68 50 L76 58" stroke="#fff" stroke-width="3"/>`,
  boot: (c) =>
    `<path d="M40 24 H78 L82 62 C104 66 122 70 132 78 C138 84 136 92 130 92 H34 C30 92 30 86 32 80 Z" fill="${c}"/><path d="M30 90 H134 V98 H30 Z" fill="#333"/><path d="M50 34 H74 M50 44 H76 M52 54 H78" stroke="#e8c9a0" stroke-width="3"/>`,
  tee: (c) =>
    `<path d="M56 20 L68 26 Q80 32 92 26 L104 20 L132 38 L120 54 L108 46 V100 H52 V46 L40 54 L28 38 Z" fill="${c}"/>`,
  shorts: (c) =>
    `<path d="M46 24 H114 L124 92 H90 L80 52 L70 92 H36 Z" fill="${c}"/><path d="M46 32 H114" stroke="#fff" stroke-width="3"/>`,
  vest: (c) =>
    `<path d="M52 20 L66 22 Q80 50 94 22 L108 20 L112 44 Q118 60 116 100 H44 Q42 60 48 44 Z" fill="${c}"/><path d="M46 66 H114 M45 82 H115" stroke="#c9d1d9" stroke-width="5"/>`,
  belt: (c) =>
    `<rect x="18" y="56" width="124" height="18" rx="9" fill="${c}"/><rect x="40" y="36" width="20" height="42" rx="6" fill="#6fb3e0"/><rect x="100" y="36" width="20" height="42" rx="6" fill="#6fb3e0"/><rect x="44" y="30" width="12" height="8" fill="#333"/><rect x="104" y="30" width="12" height="8" fill="#333"/>`,
  pack: (c) =>
    `<rect x="46" y="22" width="68" height="84" rx="16" fill="${c}"/><rect x="56" y="62" width="48" height="30" rx="8" fill="#2a4a31"/><path d="M56 22 Q80 8 104 22" stroke="#2a4a31" stroke-width="6" fill="none"/><rect x="60" y="36" width="40" height="6" rx="3" fill="#e8b84a"/>`,
  shell: (c) =>
    `<path d="M62 18 Q80 10 98 18 L104 28 L132 46 L124 96 L110 92 V102 H50 V92 L36 96 L28 46 L56 28 Z" fill="${c}"/><path d="M80 22 V102" stroke="#333" stroke-width="2"/><path d="M66 18 Q80 30 94 18" stroke="#333" stroke-width="2" fill="none"/>`,
  poles: (c) =>
    `<path d="M62 18 L70 104 M98 18 L90 104" stroke="${c}" stroke-width="5"/><rect x="56" y="14" width="12" height="24" rx="4" fill="#b98b57"/><rect x="92" y="14" width="12" height="24" rx="4" fill="#b98b57"/><circle cx="70" cy="98" r="5" fill="#555"/><circle cx="90" cy="98" r="5" fill="#555"/>`,
  mug: (c) =>
    `<rect x="48" y="34" width="52" height="62" rx="8" fill="${c}"/><path d="M100 46 H112 Q122 46 122 60 Q122 74 112 74 H100" stroke="${c}" stroke-width="7" fill="none"/><rect x="46" y="30" width="56" height="8" rx="4" fill="#444"/><path d="M64 22 Q68 14 64 8 M78 22 Q82 14 78 8" stroke="#bbb" stroke-width="2" fill="none"/>`,
  socks: (c) =>
    `<path d="M50 14 H74 V70 L96 84 Q104 92 96 100 Q90 106 80 100 L54 84 Q48 80 50 72 Z" fill="${c}"/><path d="M86 14 H110 V70 L132 84 Q140 92 132 100 Q126 106 116 100 L90 84 Q84 80 86 72 Z" fill="${c}" opacity=".75"/><path d="M50 22 H74 M86 22 H110" stroke="#e0b23b" stroke-width="4"/>`,
};
for (const p of products) {
  write(
    `assets/img/${p.slug}.svg`,
    svg(`<ellipse cx="80" cy="104" rx="58" ry="6" fill="#00000014"/>${shapes[p.shape](p.ink)}`),
  );
}

// ---- stale files and a summary ------------------------------------------------------------------

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [relative(SITE, full)];
  });
}
for (const file of walk(SITE)) {
  if (!written.has(file)) rmSync(join(SITE, file));
}
const total = [...written].reduce((sum, f) => sum + statSync(join(SITE, f)).size, 0);
console.log(`wrote ${written.size} files (${(total / 1024).toFixed(1)} KB) to ${SITE}`);
