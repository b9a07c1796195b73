// The explorer of `convgrad explain --html`: evaluates the formulas of the page data at a
// coordinate the reader chooses, product by product, and shows the planes each product reads.
// One generic evaluator: a formula is a left-hand side, derived values ("lets") and terms, each a
// sum over some variables of a product of tensor reads at affine indices (see the page data).
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("convgrad-data").textContent);
  const explorers = data.explorers || [];
  const byId = (id) => document.getElementById(id);
  const MAX_WINDOW = 64; // cells per picture axis; a bigger plane shows a window round the reads
  const WINDOW_MARGIN = 3;
  const PICTURE_WIDTH = 460; // px: a plane's cells shrink to fit
  const ROWS_SHOWN = 1000; // product rows listed per group at first
  const ARROWS = { ArrowLeft: [1, -1], ArrowRight: [1, 1], ArrowUp: [2, -1], ArrowDown: [2, 1] };

  // Tensors: float64 little-endian in base64, decoded on first use.

  const decoded = new Map();

  function tensor(name) {
    if (!decoded.has(name)) {
      const { shape, data: encoded } = data.tensors[name];
      const bytes = Uint8Array.from(atob(encoded), (character) => character.charCodeAt(0));
      const view = new DataView(bytes.buffer);
      const values = new Float64Array(bytes.length / 8);
      for (let i = 0; i < values.length; i++) values[i] = view.getFloat64(8 * i, true);
      decoded.set(name, { name, shape, values });
    }
    return decoded.get(name);
  }

  /** The value at an index, or null outside the tensor (which a formula reads as 0). */
  function valueAt(t, index) {
    let offset = 0;
    for (let axis = 0; axis < t.shape.length; axis++) {
      if (index[axis] < 0 || index[axis] >= t.shape[axis]) return null;
      offset = offset * t.shape[axis] + index[axis];
    }
    return t.values[offset];
  }

  // The evaluator.

  const affine = (a, env) => a.terms.reduce((sum, [name, factor]) => sum + factor * env[name], a.const);

  function letValue(rule, env) {
    const value = env[rule.of];
    return "div" in rule ? Math.floor(value / rule.div) : ((value % rule.mod) + rule.mod) % rule.mod;
  }

  /** The environment with every let whose source is known (in order: a let may use an earlier one). */
  function withLets(formula, env) {
    const full = { ...env };
    for (const rule of formula.lets) if (rule.of in full) full[rule.name] = letValue(rule, full);
    return full;
  }

  function* combinations(extents) {
    const values = extents.map(() => 0);
    if (extents.some((extent) => extent === 0)) return;
    for (;;) {
      yield values;
      let position = extents.length - 1;
      while (position >= 0 && ++values[position] === extents[position]) values[position--] = 0;
      if (position < 0) return;
    }
  }

  /** The axes a picture shows: a tensor's last two, a 1-D tensor's one. */
  const planeAxes = (rank) => (rank >= 2 ? [rank - 2, rank - 1] : [0]);

  /** The variables a name depends on: itself, or a let's sources. */
  function roots(formula, name) {
    const rule = formula.lets.find((candidate) => candidate.name === name);
    return rule ? roots(formula, rule.of) : [name];
  }

  /** A term's summed variables that index no pictured axis: one group of products per value. */
  function groupVariables(formula, term) {
    const pictured = new Set();
    for (const factor of term.factors) {
      for (const axis of planeAxes(factor.index.length)) {
        for (const [name] of factor.index[axis].terms) roots(formula, name).forEach((root) => pictured.add(root));
      }
    }
    return term.sum.filter((name) => !pictured.has(name));
  }

  function evaluate(formula, coordinate) {
    const free = Object.fromEntries(formula.free.map((name, i) => [name, coordinate[i]]));
    const extents = Object.fromEntries(formula.extents);
    const groups = [];
    formula.terms.forEach((term, termIndex) => {
      const grouping = groupVariables(formula, term);
      const byKey = new Map();
      for (const values of combinations(term.sum.map((name) => extents[name]))) {
        const env = withLets(formula, { ...free, ...Object.fromEntries(term.sum.map((name, i) => [name, values[i]])) });
        const reads = term.factors.map((factor) => {
          const index = factor.index.map((a) => affine(a, env));
          return { tensor: factor.tensor, index, value: valueAt(tensor(factor.tensor), index) ?? 0 };
        });
        const product = reads.reduce((result, read) => result * read.value, 1);
        const assignment = grouping.map((name) => [name, env[name]]);
        const key = `${termIndex}:${assignment.join(";")}`;
        if (!byKey.has(key)) {
          const label = assignment.length
            ? assignment.map(([name, value]) => `${name}=${value}`).join(" ")
            : term.factors.map((factor) => factor.tensor).join("·");
          byKey.set(key, { term, label, products: [], partial: 0 });
          groups.push(byKey.get(key));
        }
        const group = byKey.get(key);
        group.products.push({ reads, product });
        group.partial += product;
      }
    });
    const known = withLets(formula, free);
    const lhsIndex = formula.lhs.index.map((a) => affine(a, known));
    const total = groups.reduce((sum, group) => sum + group.partial, 0);
    const magnitude = groups.reduce((sum, group) => sum + group.products.reduce((s, p) => s + Math.abs(p.product), 0), 0);
    const computed = valueAt(tensor(formula.lhs.tensor), lhsIndex);
    const agrees = computed !== null && Math.abs(total - computed) <= 1e-12 * (magnitude + Math.abs(computed));
    return { known, groups, total, computed, agrees, lhs: `${formula.lhs.tensor}[${lhsIndex.join(",")}]` };
  }

  // Coordinates.

  const freeExtents = (formula) => {
    const extents = Object.fromEntries(formula.extents);
    return formula.free.map((name) => extents[name]);
  };

  /** The centre: every free variable of a spatial axis (the third on) at its middle, the rest 0. */
  function initialCoordinate(formula) {
    const spatial = new Set(
      formula.lhs.index.slice(2).flatMap((a) => a.terms.flatMap(([name]) => roots(formula, name)))
    );
    return formula.free.map((name, i) => (spatial.has(name) ? Math.floor(freeExtents(formula)[i] / 2) : 0));
  }

  /** One odometer step at a position: -1 or +1, carrying into the positions before it. */
  function step(coordinate, extents, position, delta) {
    const next = [...coordinate];
    for (let p = position; p >= 0; p--) {
      const moved = next[p] + delta;
      next[p] = (moved + extents[p]) % extents[p];
      if (moved >= 0 && moved < extents[p]) break;
    }
    return next;
  }

  const inRange = (coordinate, formula) =>
    coordinate.length === formula.free.length &&
    coordinate.every((value, i) => Number.isInteger(value) && value >= 0 && value < freeExtents(formula)[i]);

  // Text.

  const minus = (text) => text.replace(/-/g, "−");
  const number = (value, digits) => minus(String(Number(value.toPrecision(digits))));
  const factorValue = (value) => (value < 0 ? `(${number(value, 6)})` : number(value, 6));
  const counted = (count, noun) => `${count} ${noun}${count === 1 ? "" : "s"}`;

  /** '10+u'', 'u'−1', '2i', with the known variables' values folded into the constant. */
  function affineText(a, known) {
    let constant = a.const;
    const parts = [];
    for (const [name, factor] of a.terms) {
      if (name in known) constant += factor * known[name];
      else if (factor !== 0) {
        const size = Math.abs(factor) === 1 ? "" : String(Math.abs(factor));
        parts.push(`${factor < 0 ? "−" : parts.length ? "+" : ""}${size}${name}`);
      }
    }
    const unknown = parts.join("");
    if (!unknown) return minus(String(constant));
    if (constant > 0) return `${constant}+${unknown}`;
    return constant < 0 ? `${unknown}−${-constant}` : unknown;
  }

  const readText = (factor, known) => `${factor.tensor}[${factor.index.map((a) => affineText(a, known)).join(",")}]`;

  function termText(formula, term, known) {
    const grouping = groupVariables(formula, term);
    const rest = term.sum.filter((name) => !grouping.includes(name));
    const sums = [grouping, rest].filter((names) => names.length).map((names) => `Σ_${names.join(",")} `);
    return sums.join("") + term.factors.map((factor) => readText(factor, known)).join("·");
  }

  function letText(rule, known) {
    const rhs = "div" in rule ? `⌊${rule.of}/${rule.div}⌋` : `${rule.of} mod ${rule.mod}`;
    return rule.name in known ? `${rule.name} = ${rhs} = ${known[rule.name]}` : `${rule.name} = ${rhs}`;
  }

  // Drawing.

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  /** The rows or columns a picture shows: all, with any read outside; past MAX_WINDOW, a window round the reads. */
  function pictureRange(positions, size) {
    const first = Math.min(...positions);
    const last = Math.max(...positions);
    const all = [Math.min(first, 0), Math.max(last + 1, size)];
    if (all[1] - all[0] <= MAX_WINDOW) return all;
    const start = Math.max(all[0], first - WINDOW_MARGIN);
    return [start, Math.min(all[1], last + 1 + WINDOW_MARGIN, start + MAX_WINDOW)];
  }

  function rangeText(name, [start, end], size) {
    return start === 0 && end === size ? `${size} ${name}` : `${name} ${start}–${end - 1} of ${size}`;
  }

  /** A plane's cell at "row,column": its value shaded, marked when read, 0 or outside the tensor. */
  function planeCell(t, index, position, read, largest) {
    const value = valueAt(t, index);
    const classes = read.has(position) ? ["read"] : [];
    if (value === null) classes.push("outside");
    else if (value === 0) classes.push("zero");
    else classes.push(value < 0 ? "neg" : "pos");
    const name = `${t.name}[${index.join(",")}]`;
    const title = value === null ? `${name}: outside, reads as 0` : `${name} = ${minus(String(value))}`;
    const cell = element("td", { class: classes.join(" "), title, "data-cell": position });
    if (value) cell.style.setProperty("--mix", `${Math.round((60 * Math.abs(value)) / largest)}%`);
    return cell;
  }

  /** One plane of a tensor: a cell per value, the cells in `read` ("row,column") outlined and marked. */
  function planeFigure(t, leading, read) {
    const rank = t.shape.length;
    const height = rank >= 2 ? t.shape[rank - 2] : 1;
    const width = t.shape[rank - 1];
    const [top, bottom] = pictureRange([...read.values()].map((cell) => cell[0]), height);
    const [left, right] = pictureRange([...read.values()].map((cell) => cell[1]), width);
    const indexOf = (row, column) => (rank >= 2 ? [...leading, row, column] : [column]);
    let largest = 0;
    for (let row = top; row < bottom; row++) {
      for (let column = left; column < right; column++) {
        largest = Math.max(largest, Math.abs(valueAt(t, indexOf(row, column)) ?? 0));
      }
    }
    const size = Math.max(7, Math.min(30, Math.floor(PICTURE_WIDTH / (right - left + 1))));
    const labelEvery = right - left > 24 ? 10 : 5;
    const label = (position) => (position % labelEvery === 0 ? String(position) : "");
    // Column numbers every labelEvery columns, each over the columns up to the next.
    const head = element("tr", {}, element("th"));
    for (let column = left; column < right; ) {
      const span = Math.min(right - column, labelEvery - (((column % labelEvery) + labelEvery) % labelEvery));
      head.append(element("th", { colspan: String(span), class: "column" }, label(column)));
      column += span;
    }
    const table = element(
      "table", { class: size < 14 ? "plane small" : "plane", "aria-hidden": "true", style: `--cell: ${size}px` }, head
    );
    for (let row = top; row < bottom; row++) {
      const cells = [];
      for (let column = left; column < right; column++) {
        cells.push(planeCell(t, indexOf(row, column), `${row},${column}`, read, largest));
      }
      table.append(element("tr", {}, element("th", { class: "row" }, rank >= 2 ? label(row) : ""), ...cells));
    }
    const shown = rank >= 2
      ? `${rangeText("rows", [top, bottom], height)}, ${rangeText("columns", [left, right], width)}`
      : rangeText("entries", [left, right], width);
    const caption = element(
      "figcaption", {}, element("span", { class: "tensor" }, leading.length ? `${t.name}[${leading.join(",")}]` : t.name),
      `: ${shown}; ${counted(read.size, "cell")} read`
    );
    return element("figure", { "data-tensor": t.name, "data-plane": leading.join(",") }, caption, table);
  }

  /** The planes a group's products read, per factor, with the cells read in each. */
  function groupPictures(group) {
    const figures = [];
    group.term.factors.forEach((factor, k) => {
      const planes = new Map();
      for (const { reads } of group.products) {
        const index = reads[k].index;
        const axes = planeAxes(index.length);
        const leading = index.slice(0, index.length - axes.length);
        const cell = axes.length === 2 ? [index[axes[0]], index[axes[1]]] : [0, index[axes[0]]];
        const key = leading.join(",");
        if (!planes.has(key)) planes.set(key, { leading, read: new Map() });
        planes.get(key).read.set(cell.join(","), cell);
      }
      for (const { leading, read } of planes.values()) figures.push(planeFigure(tensor(factor.tensor), leading, read));
    });
    return figures;
  }

  function productRow(product, zerosShown) {
    const reads = product.reads.map((read) => `${read.tensor}[${read.index.join(",")}]`);
    const row = element(
      "tr",
      {
        "data-product": String(product.product),
        "data-factors": product.reads.map((read) => String(read.value)).join(" "),
        "data-reads": reads.join(" "),
      },
      element("td", {}, reads.join("·")),
      element("td", {}, product.reads.map((read) => factorValue(read.value)).join("·")),
      element("td", { class: "number" }, number(product.product, 10))
    );
    if (product.product === 0) {
      row.classList.add("zero-product");
      row.hidden = !zerosShown;
    }
    return row;
  }

  function groupBody(group, zerosShown) {
    const zeros = group.products.filter((product) => product.product === 0).length;
    const count = group.products.length;
    const body = element(
      "tbody",
      { "data-group": group.label, "data-partial": String(group.partial) },
      element(
        "tr", { class: "group-head" },
        element("th", { scope: "rowgroup", colspan: "2" }, `${group.label}: ${counted(count, "product")}, ${count - zeros} non-zero`),
        element("td", { class: "number" }, `partial sum ${number(group.partial, 10)}`)
      ),
      ...group.products.slice(0, ROWS_SHOWN).map((product) => productRow(product, zerosShown))
    );
    const unlisted = group.products.length - ROWS_SHOWN;
    if (unlisted > 0) {
      // Thousands of rows make every step slow; the rest are listed on request.
      const more = element("button", { type: "button" }, `list the other ${counted(unlisted, "product")}`);
      const row = element("tr", { class: "more" }, element("td", { colspan: "3" }, more));
      more.addEventListener("click", () => row.replaceWith(
        ...group.products.slice(ROWS_SHOWN).map((product) => productRow(product, state.zerosShown.has(group.label)))
      ));
      body.append(row);
    }
    if (zeros) {
      const toggle = element(
        "button",
        { type: "button", "aria-expanded": String(zerosShown), "aria-label": `show the zero products of ${group.label}` },
        zerosShown ? "hide them" : "show them"
      );
      toggle.addEventListener("click", () => {
        const show = toggle.getAttribute("aria-expanded") !== "true";
        state.zerosShown[show ? "add" : "delete"](group.label);
        body.querySelectorAll(".zero-product").forEach((row) => (row.hidden = !show));
        toggle.setAttribute("aria-expanded", String(show));
        toggle.textContent = show ? "hide them" : "show them";
      });
      const sentence = `${counted(zeros, "product")} ${zeros === 1 ? "is" : "are"} 0 (a factor reads a zero)`;
      body.append(element("tr", { class: "zeros" }, element("td", { colspan: "3" }, sentence, toggle)));
    }
    return body;
  }

  // State, kept in the URL's hash: #dX=0,0,9,9.

  const state = {
    explorer: 0,
    coordinates: explorers.map((explorer) => initialCoordinate(explorer.formula)),
    group: null, // null: the first group with a sum (not the bias), chosen when the explorer is shown
    zerosShown: new Set(),
    result: null,
  };

  const current = () => explorers[state.explorer];

  function fromHash(hash) {
    const match = /^#([^=]+)=(\d+(?:,\d+)*)$/.exec(hash);
    if (!match) return null;
    let name;
    try {
      name = decodeURIComponent(match[1]);
    } catch {
      return null;
    }
    const explorer = explorers.findIndex((candidate) => candidate.tensor === name);
    const coordinate = match[2].split(",").map(Number);
    return explorer >= 0 && inRange(coordinate, explorers[explorer].formula) ? { explorer, coordinate } : null;
  }

  function writeHash() {
    const hash = `#${encodeURIComponent(current().tensor)}=${state.coordinates[state.explorer].join(",")}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  function choose(explorer, coordinate) {
    if (explorer !== state.explorer) {
      state.explorer = explorer;
      state.group = null;
      state.zerosShown.clear();
      buildInputs();
    }
    state.coordinates[explorer] = coordinate;
    show();
  }

  const moveTo = (coordinate) => choose(state.explorer, coordinate);

  // Controls.

  function buildTensorChoice() {
    const choices = byId("explorer-tensors");
    explorers.forEach((explorer, i) => {
      const input = element("input", { type: "radio", name: "explorer-tensor", id: `explorer-tensor-${i}`, value: explorer.tensor });
      input.checked = i === state.explorer;
      input.addEventListener("change", () => input.checked && choose(i, state.coordinates[i]));
      choices.append(element("label", { for: input.id }, input, ` ${explorer.label}`));
    });
  }

  function buildInputs() {
    const formula = current().formula;
    const extents = freeExtents(formula);
    byId("explorer-tensor-" + state.explorer).checked = true;
    byId("explorer-inputs").replaceChildren(
      ...formula.free.map((name, i) => {
        const input = element("input", {
          type: "number", id: `explorer-coordinate-${i}`, "data-variable": name,
          min: "0", max: String(extents[i] - 1), step: "1", inputmode: "numeric",
        });
        input.addEventListener("input", () => {
          const value = Number(input.value);
          const valid = input.value !== "" && Number.isInteger(value) && value >= 0 && value < extents[i];
          input.setAttribute("aria-invalid", String(!valid));
          if (valid) moveTo(state.coordinates[state.explorer].map((old, j) => (j === i ? value : old)));
        });
        input.addEventListener("change", () => {
          input.value = String(state.coordinates[state.explorer][i]);
          input.setAttribute("aria-invalid", "false");
        });
        const extent = element("span", { class: "note", id: `${input.id}-extent` }, `< ${extents[i]}`);
        input.setAttribute("aria-describedby", extent.id);
        return element("span", {}, element("label", { for: input.id }, name), " ", input, " ", extent);
      })
    );
  }

  function stepBy(position, delta) {
    const formula = current().formula;
    if (position >= 0) moveTo(step(state.coordinates[state.explorer], freeExtents(formula), position, delta));
  }

  function onArrow(event) {
    const move = ARROWS[event.key];
    if (!move) return;
    event.preventDefault();
    stepBy(current().formula.free.length - move[0], move[1]);
  }

  function chooseGroup(index) {
    const count = state.result.groups.length;
    state.group = (index + count) % count;
    showGroup();
  }

  function buildControls() {
    buildTensorChoice();
    buildInputs();
    const last = () => current().formula.free.length - 1;
    byId("explorer-previous").addEventListener("click", () => stepBy(last(), -1));
    byId("explorer-next").addEventListener("click", () => stepBy(last(), 1));
    document.querySelectorAll(".step-key").forEach((node) => node.addEventListener("keydown", onArrow));
    byId("explorer-group").addEventListener("change", (event) => chooseGroup(Number(event.target.value)));
    byId("explorer-group-previous").addEventListener("click", () => chooseGroup(state.group - 1));
    byId("explorer-group-next").addEventListener("click", () => chooseGroup(state.group + 1));
    window.addEventListener("hashchange", () => {
      const wanted = fromHash(location.hash) ?? { explorer: 0, coordinate: initialCoordinate(explorers[0].formula) };
      choose(wanted.explorer, wanted.coordinate);
    });
  }

  // Showing a coordinate.

  function showGroup() {
    const group = state.result.groups[state.group];
    byId("explorer-group").value = String(state.group);
    byId("explorer-group-shown").textContent =
      `Pictured: the planes read by the ${counted(group.products.length, "product")} of group ${group.label}.`;
    byId("explorer-pictures").replaceChildren(...groupPictures(group));
    byId("explorer-products").querySelectorAll("tbody").forEach((body, i) => body.classList.toggle("current", i === state.group));
  }

  function showFormula(formula, result) {
    byId("explorer-formula-text").textContent = formula.text;
    byId("explorer-formula-at").textContent =
      `${result.lhs} = ${formula.terms.map((term) => termText(formula, term, result.known)).join(" + ")}`;
    byId("explorer-lets").textContent = formula.lets.length
      ? `where ${formula.lets.map((rule) => letText(rule, result.known)).join(", ")}`
      : "";
  }

  function showResult(result, count) {
    const total = byId("explorer-total");
    byId("explorer-total-label").textContent = `The sum of the ${counted(count, "product")}`;
    total.textContent = number(result.total, 12);
    total.dataset.value = String(result.total);
    const by = `computed by ${current().computed_by}`;
    byId("explorer-computed-label").textContent = `${result.lhs} ${by}`;
    const computed = byId("explorer-computed");
    computed.textContent = result.computed === null ? "outside the tensor" : number(result.computed, 12);
    computed.dataset.value = String(result.computed);
    const agree = byId("explorer-agree");
    agree.dataset.agree = String(result.agrees);
    agree.classList.toggle("disagree", !result.agrees);
    agree.textContent = result.agrees
      ? `✓ The sum = ${result.lhs} ${by}.`
      : `✗ The sum does NOT equal ${result.lhs} ${by}: they differ by ${number(result.total - (result.computed ?? 0), 3)}.`;
    byId("explorer-status").textContent =
      `${result.lhs} = ${computed.textContent}; the sum of its ${counted(count, "product")} ${result.agrees ? "agrees" : "does NOT agree"}.`;
  }

  function showProducts(result, count) {
    byId("explorer-group").replaceChildren(
      ...result.groups.map((group, i) => element("option", { value: String(i) }, group.label))
    );
    const table = element(
      "table", { class: "products-table" },
      element("caption", {}, `The ${counted(count, "product")} of ${result.lhs}, by group, and each group's partial sum`),
      element("thead", {}, element(
        "tr", {},
        element("th", { scope: "col" }, "reads"),
        element("th", { scope: "col" }, "values"),
        element("th", { scope: "col", class: "number" }, "product")
      )),
      ...result.groups.map((group) => groupBody(group, state.zerosShown.has(group.label)))
    );
    byId("explorer-products").replaceChildren(table);
  }

  function show() {
    const explorer = current();
    const coordinate = state.coordinates[state.explorer];
    const result = evaluate(explorer.formula, coordinate);
    const count = result.groups.reduce((sum, group) => sum + group.products.length, 0);
    state.result = result;
    state.group = state.group === null
      ? Math.max(0, result.groups.findIndex((group) => group.term.sum.length > 0))
      : Math.min(state.group, result.groups.length - 1);
    coordinate.forEach((value, i) => {
      const input = byId(`explorer-coordinate-${i}`);
      if (input.value === "" || Number(input.value) !== value) input.value = String(value);
      input.setAttribute("aria-invalid", "false");
    });
    byId("explorer-note").textContent = explorer.note;
    showFormula(explorer.formula, result);
    showResult(result, count);
    showProducts(result, count);
    showGroup();
    writeHash();
  }

  if (explorers.length) {
    const wanted = fromHash(location.hash);
    if (wanted) {
      state.explorer = wanted.explorer;
      state.coordinates[wanted.explorer] = wanted.coordinate;
    }
    byId("explorer").hidden = false;
    buildControls();
    show();
  }
})();
