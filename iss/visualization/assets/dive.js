/* Facets-style dive: every picture as a sprite thumbnail on a canvas, binned into rows and columns
 * by any column, coloured by any column, filtered by a category and an id, sorted within bins or placed
 * at its embedding coordinates. The settings live in the URL (#row=cluster&color=hour...), so a view
 * can be bookmarked or sent; a clicked picture links to its page on the explorer server.
 * Plain JavaScript, no dependency: the data is the JSON embedded in the page (see facets.py). */
(function () {
  'use strict';

  const DATA = JSON.parse(document.getElementById('dive-data').textContent);
  const N = DATA.n;
  const COLUMNS = {};
  DATA.columns.forEach(c => { COLUMNS[c.name] = c; });
  const BINNABLE = DATA.columns.filter(c => c.kind === 'cat' || c.kind === 'num');
  const MAX_BINS = 30;          // more categories than this: the largest ones, then "other"
  const NUMERIC_BINS = 10;      // equal-width bins for continuous numbers
  const MISSING_COLOR = '#c8ced6';
  const DEFAULT_COLOR = '#4e79a7';
  const VIRIDIS = ['#440154', '#3b528b', '#21918c', '#5ec962', '#fde725'];
  const TILE_W = DATA.sprite.tile[0], TILE_H = DATA.sprite.tile[1], ASPECT = TILE_H / TILE_W;

  const state = {
    row: 'none', column: 'none', color: DATA.defaults.color, sort: DATA.defaults.sort,
    order: DATA.defaults.sort === 'silhouette' ? 'desc' : 'asc', positions: 'grid', display: 'thumbs',
    filter: 'none', value: '', q: '',
  };
  const STATE_KEYS = Object.keys(state);
  readHash();
  const view = { k: 1, tx: 0, ty: 0 };
  let layout = null, colors = null, hovered = -1, selected = -1;
  let animation = null;

  const canvas = document.getElementById('dive-canvas');
  const ctx = canvas.getContext('2d');
  const stage = document.getElementById('stage');
  const tooltip = document.getElementById('tooltip');
  const panel = document.getElementById('panel');

  const sprite = new Image();
  let spriteReady = false, spriteBitmap = null;
  sprite.onload = () => {
    // a decoded bitmap: drawing 14,000 tiles from it never re-decodes the JPEG
    const ready = bitmap => { spriteBitmap = bitmap; spriteReady = true; draw(); };
    if (window.createImageBitmap) createImageBitmap(sprite).then(ready, () => ready(null));
    else ready(null);
  };
  sprite.src = DATA.sprite.url;

  // --- formatting -------------------------------------------------------------------------------
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return v.toLocaleString('en');
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function valueText(col, i) {
    if (col.kind === 'cat') return col.codes[i] < 0 ? '–' : col.categories[col.codes[i]];
    return fmt(col.values[i]);
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, ch => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]);
  }

  // --- state in the URL ---------------------------------------------------------------------------
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const columnOk = name => name === 'none' || COLUMNS[name] !== undefined;
    STATE_KEYS.forEach(key => {
      if (!params.has(key)) return;
      const value = params.get(key);
      if (['row', 'column', 'color', 'filter'].includes(key) && !columnOk(value)) return;
      if (key === 'sort' && !COLUMNS[value]) return;
      state[key] = value;
    });
  }
  function writeHash() {
    const params = new URLSearchParams();
    STATE_KEYS.forEach(key => { if (state[key] !== '') params.set(key, state[key]); });
    const hash = '#' + params.toString();
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  // --- filter -------------------------------------------------------------------------------------
  function activeMask() {
    const mask = new Uint8Array(N).fill(1);
    const col = COLUMNS[state.filter];
    if (col && col.kind === 'cat' && state.value !== '') {
      const code = col.categories.indexOf(state.value);
      const missing = state.value === '(missing)';
      for (let i = 0; i < N; i++) mask[i] = missing ? col.codes[i] < 0 : col.codes[i] === code;
    }
    const q = state.q.trim().toLowerCase();
    if (q) for (let i = 0; i < N; i++) if (mask[i] && !DATA.ids[i].toLowerCase().includes(q)) mask[i] = 0;
    return mask;
  }

  // --- binning ----------------------------------------------------------------------------------
  function binsOf(name) {
    const index = new Int32Array(N);
    if (name === 'none') return { labels: ['all pictures'], index };
    const col = COLUMNS[name];
    let labels;
    if (col.kind === 'cat') {
      const counts = new Array(col.categories.length).fill(0);
      col.codes.forEach(c => { if (c >= 0) counts[c] += 1; });
      let keep = col.categories.map((_, c) => c);
      if (keep.length > MAX_BINS) {  // keep the largest, in the column's own order
        const largest = new Set(keep.slice().sort((a, b) => counts[b] - counts[a]).slice(0, MAX_BINS - 1));
        keep = keep.filter(c => largest.has(c));
      }
      const binOfCode = new Int32Array(col.categories.length).fill(keep.length);
      keep.forEach((c, b) => { binOfCode[c] = b; });
      labels = keep.map(c => col.categories[c]);
      const hasOther = keep.length < col.categories.length;
      if (hasOther) labels.push('other');
      const missingBin = labels.length;
      let anyMissing = false;
      for (let i = 0; i < N; i++) {
        const c = col.codes[i];
        if (c < 0) { index[i] = missingBin; anyMissing = true; } else index[i] = binOfCode[c];
      }
      if (anyMissing) labels.push('(missing)');
      return { labels, index };
    }
    const values = col.values;
    const known = values.filter(v => v !== null);
    const unique = Array.from(new Set(known)).sort((a, b) => a - b);
    let binOf;
    if (unique.length <= 24 && unique.every(Number.isInteger)) {
      const pos = new Map(unique.map((v, b) => [v, b]));
      labels = unique.map(v => fmt(v));
      binOf = v => pos.get(v);
    } else {
      const lo = unique.length ? unique[0] : 0, hi = unique.length ? unique[unique.length - 1] : 1;
      const width = (hi - lo) / NUMERIC_BINS || 1;
      labels = [];
      for (let b = 0; b < NUMERIC_BINS; b++) labels.push(fmt(lo + b * width) + ' – ' + fmt(lo + (b + 1) * width));
      binOf = v => Math.min(NUMERIC_BINS - 1, Math.floor((v - lo) / width));
    }
    const missingBin = labels.length;
    let anyMissing = false;
    for (let i = 0; i < N; i++) {
      const v = values[i];
      if (v === null) { index[i] = missingBin; anyMissing = true; } else index[i] = binOf(v);
    }
    if (anyMissing) labels.push('(missing)');
    return { labels, index };
  }

  // --- colours ----------------------------------------------------------------------------------
  function ramp(t) {
    const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1), k = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const a = VIRIDIS[k], b = VIRIDIS[k + 1], f = x - k;
    const ch = (h, o) => parseInt(h.slice(o, o + 2), 16);
    const mix = o => Math.round(ch(a, o) + (ch(b, o) - ch(a, o)) * f);
    return `rgb(${mix(1)},${mix(3)},${mix(5)})`;
  }
  function colorsOf(name) {
    const out = new Array(N);
    if (name === 'none') { out.fill(DEFAULT_COLOR); return { fill: out, legend: null }; }
    const col = COLUMNS[name];
    if (col.kind === 'cat') {
      const counts = new Array(col.categories.length).fill(0);
      let missing = 0;
      for (let i = 0; i < N; i++) {
        const c = col.codes[i];
        if (c < 0) { out[i] = MISSING_COLOR; missing += 1; } else { out[i] = col.colors[c]; counts[c] += 1; }
      }
      const items = col.categories.map((label, c) => ({ label, color: col.colors[c], count: counts[c] }));
      if (missing) items.push({ label: '(missing)', color: MISSING_COLOR, count: missing });
      return { fill: out, legend: { kind: 'cat', items } };
    }
    const known = col.values.filter(v => v !== null);
    const lo = Math.min(...known), hi = Math.max(...known);
    for (let i = 0; i < N; i++) {
      const v = col.values[i];
      out[i] = v === null ? MISSING_COLOR : ramp(hi > lo ? (v - lo) / (hi - lo) : 0.5);
    }
    return { fill: out, legend: { kind: 'num', lo, hi } };
  }

  // --- layout -----------------------------------------------------------------------------------
  function sortKey(i) {
    const col = COLUMNS[state.sort];
    if (!col) return i;
    const v = col.kind === 'cat' ? col.codes[i] : col.kind === 'num' ? col.values[i] : col.values[i];
    return v === null || v === undefined || v < 0 && col.kind === 'cat' ? null : v;
  }
  function xyColumns() {
    // the embedding coordinates of the run whose cluster column is the row/column/colour one, else the latest
    const pick = [state.color, state.row, state.column].map(n => COLUMNS[n]).find(c => c && c.run !== undefined);
    const run = pick ? pick.run : undefined;
    const xs = DATA.columns.filter(c => c.axis === 'x'), ys = DATA.columns.filter(c => c.axis === 'y');
    const x = xs.find(c => c.run === run) || xs[0], y = ys.find(c => c.run === run) || ys[0];
    return x && y ? [x, y] : null;
  }

  function computeLayout() {
    const rows = binsOf(state.row), cols = binsOf(state.column);
    const R = rows.labels.length, C = cols.labels.length;
    const cells = [];
    for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) cells.push({ r, c, items: [] });
    const active = activeMask();
    let nActive = 0;
    for (let i = 0; i < N; i++) if (active[i]) { cells[rows.index[i] * C + cols.index[i]].items.push(i); nActive += 1; }
    const desc = state.order === 'desc';
    const keys = new Array(N);
    for (let i = 0; i < N; i++) keys[i] = sortKey(i);
    const cmp = (a, b) => {
      const ka = keys[a], kb = keys[b];
      if (ka === kb) return a - b;
      if (ka === null) return 1;
      if (kb === null) return -1;
      return (ka < kb ? -1 : 1) * (desc ? -1 : 1);
    };
    cells.forEach(cell => cell.items.sort(cmp));

    const W = stage.clientWidth, H = stage.clientHeight;
    const left = state.row === 'none' ? 12 : 150, top = state.column === 'none' ? 12 : 40;
    const gap = R * C > 1 ? 12 : 0, caption = 16;
    const cellW = (W - left - 12) / C, cellH = (H - top - 12) / R;
    const innerW = Math.max(10, cellW - gap), innerH = Math.max(10, cellH - gap - caption);
    const maxCount = Math.max(1, ...cells.map(cell => cell.items.length));
    const x = new Float32Array(N).fill(NaN), y = new Float32Array(N).fill(NaN);  // filtered out: never drawn
    let size = 1, perRow = 1;
    if (state.positions === 'grid') {
      // largest square-ish item size that fits the fullest cell
      for (let g = 1; g <= maxCount; g++) {
        const s = Math.min(innerW / g, innerH / (Math.ceil(maxCount / g) * ASPECT));
        if (s > size || g === 1) { size = s; perRow = g; }
        if (innerW / g < size) break;
      }
      cells.forEach(cell => {
        const ox = left + cell.c * cellW + gap / 2, oy = top + cell.r * cellH + gap / 2 + caption;
        cell.items.forEach((i, k) => {
          x[i] = ox + (k % perRow) * size;
          y[i] = oy + Math.floor(k / perRow) * size * ASPECT;
        });
      });
    } else {
      const [xc, yc] = xyColumns() || [null, null];
      const xv = xc ? xc.values : [], yv = yc ? yc.values : [];
      const kx = xv.filter(v => v !== null), ky = yv.filter(v => v !== null);
      const x0 = Math.min(...kx), x1 = Math.max(...kx), y0 = Math.min(...ky), y1 = Math.max(...ky);
      size = Math.max(3, Math.min(innerW, innerH) / Math.sqrt(maxCount) * 0.9);
      const spanW = innerW - size, spanH = innerH - size * ASPECT;
      cells.forEach(cell => {
        const ox = left + cell.c * cellW + gap / 2, oy = top + cell.r * cellH + gap / 2 + caption;
        cell.items.forEach(i => {
          if (xv[i] === null || yv[i] === null || !xc) { x[i] = NaN; y[i] = NaN; return; }
          x[i] = ox + (x1 > x0 ? (xv[i] - x0) / (x1 - x0) : 0.5) * spanW;
          y[i] = oy + (y1 > y0 ? 1 - (yv[i] - y0) / (y1 - y0) : 0.5) * spanH;  // y up, like a plot
        });
      });
    }
    cells.forEach(cell => {
      cell.x = left + cell.c * cellW + gap / 2; cell.y = top + cell.r * cellH + gap / 2;
      cell.w = innerW; cell.h = innerH + caption;
    });
    return { rowLabels: rows.labels, columnLabels: cols.labels, cells, x, y, size, perRow, left, top, cellW, cellH,
             nActive };
  }

  // --- drawing ----------------------------------------------------------------------------------
  function resizeCanvas() {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(stage.clientWidth * dpr);
    canvas.height = Math.round(stage.clientHeight * dpr);
  }

  function positionsAt(t, target = layout) {
    if (!animation || t >= 1) return [target.x, target.y];
    const e = t * t * (3 - 2 * t), x = new Float32Array(N), y = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      const fx = animation.x[i], fy = animation.y[i];
      x[i] = Number.isNaN(fx) ? target.x[i] : fx + (target.x[i] - fx) * e;
      y[i] = Number.isNaN(fy) ? target.y[i] : fy + (target.y[i] - fy) * e;
    }
    return [x, y];
  }

  function draw(t = 1) {
    if (!layout) return;
    const started = performance.now();
    drawFrame(t);
    window.dive.timings.draw_ms = performance.now() - started;
  }

  function drawFrame(t) {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#f7f8fa';
    ctx.fillRect(0, 0, stage.clientWidth, stage.clientHeight);
    ctx.setTransform(dpr * view.k, 0, 0, dpr * view.k, dpr * view.tx, dpr * view.ty);

    const many = layout.cells.length > 1;
    ctx.textBaseline = 'middle';
    layout.cells.forEach(cell => {
      if (many) {
        ctx.fillStyle = '#ffffff';
        ctx.fillRect(cell.x, cell.y, cell.w, cell.h);
        ctx.strokeStyle = '#e4e7eb';
        ctx.lineWidth = 1 / view.k;
        ctx.strokeRect(cell.x, cell.y, cell.w, cell.h);
      }
      ctx.fillStyle = '#616e7c';
      ctx.font = `${11}px sans-serif`;
      ctx.textAlign = 'left';
      ctx.fillText(`${cell.items.length.toLocaleString('en')}`, cell.x + 3, cell.y + 8);
    });
    ctx.fillStyle = '#1f2933';
    ctx.font = 'bold 12px sans-serif';
    if (state.row !== 'none') {
      ctx.textAlign = 'right';
      layout.rowLabels.forEach((label, r) => {
        const text = label.length > 22 ? label.slice(0, 21) + '…' : label;
        ctx.fillText(text, layout.left - 8, layout.top + (r + 0.5) * layout.cellH);
      });
    }
    if (state.column !== 'none') {
      ctx.textAlign = 'center';
      layout.columnLabels.forEach((label, c) => {
        const text = label.length > 26 ? label.slice(0, 25) + '…' : label;
        ctx.fillText(text, layout.left + (c + 0.5) * layout.cellW, layout.top - 14);
      });
    }

    const [xs, ys] = positionsAt(t);
    const w = layout.size, h = layout.size * ASPECT;
    const x0 = -view.tx / view.k, y0 = -view.ty / view.k;
    const x1 = x0 + stage.clientWidth / view.k, y1 = y0 + stage.clientHeight / view.k;
    const framed = state.color !== 'none';
    // a colour frame of 6% of the tile, kept between 0.75 and 4 screen pixels whatever the zoom
    const border = framed ? Math.min(4, Math.max(0.75, w * view.k * 0.06)) / view.k : 0;
    const sharp = DATA.thumbs && w * view.k > 1.15 * TILE_W;  // bigger than a sprite tile: use the thumbnail file
    // thumbnails smaller than ~3 screen pixels show nothing but their colour: draw blocks instead
    const thumbs = state.display === 'thumbs' && spriteReady && w * view.k >= 3;
    const columns = DATA.sprite.columns;
    const visible = [];
    for (let i = 0; i < N; i++) {
      const x = xs[i], y = ys[i];
      if (!(x <= x1 && y <= y1 && x + w >= x0 && y + h >= y0)) continue;  // NaN fails too
      visible.push(i);
    }
    if (!thumbs || framed) {
      // one path per colour: setting fillStyle and filling 14,000 times is what made redraws slow
      const byColor = new Map();
      for (const i of visible) {
        const color = colors.fill[i];
        let list = byColor.get(color);
        if (!list) { list = []; byColor.set(color, list); }
        list.push(i);
      }
      byColor.forEach((items, color) => {
        ctx.fillStyle = color;
        ctx.beginPath();
        for (const i of items) ctx.rect(xs[i], ys[i], w * 0.96, h * 0.96);
        ctx.fill();
      });
    }
    if (thumbs) {
      const source = spriteBitmap || sprite;
      const iw = w * 0.96 - 2 * border, ih = h * 0.96 - 2 * border;
      for (const i of visible) {
        const image = sharp ? thumbImage(i) : null;
        if (image && image.complete && image.naturalWidth > 0) {
          ctx.drawImage(image, xs[i] + border, ys[i] + border, iw, ih);
        } else {
          ctx.drawImage(source, (i % columns) * TILE_W, Math.floor(i / columns) * TILE_H, TILE_W, TILE_H,
                        xs[i] + border, ys[i] + border, iw, ih);
        }
      }
    }
    window.dive.drawn = visible.length;
    [[selected, '#e15759'], [hovered, '#111111']].forEach(([i, color]) => {
      if (i < 0 || Number.isNaN(xs[i])) return;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2.5 / view.k;
      ctx.strokeRect(xs[i] - 1 / view.k, ys[i] - 1 / view.k, w * 0.96 + 2 / view.k, h * 0.96 + 2 / view.k);
    });
  }

  // full-size thumbnails, loaded only for pictures drawn larger than a sprite tile
  const thumbImages = new Map();
  let redrawQueued = false;
  function thumbImage(i) {
    let image = thumbImages.get(i);
    if (!image) {
      image = new Image();
      image.onload = () => {
        if (!redrawQueued && !animation) {
          redrawQueued = true;
          requestAnimationFrame(() => { redrawQueued = false; draw(); });
        }
      };
      image.src = DATA.thumbs[i];
      thumbImages.set(i, image);
    }
    return image;
  }

  function relayout(animate = true) {
    const previous = layout;
    const started = performance.now();
    layout = computeLayout();
    colors = colorsOf(state.color);
    window.dive.timings.layout_ms = performance.now() - started;
    window.dive.layout = layout;
    writeHash();
    syncPanel();
    updateStatus();
    updateLegend();
    if (animate && previous && N <= 40000) {
      // start from where the pictures are drawn now (mid-animation too)
      const [fromX, fromY] = animation ? positionsAt(Math.min(1, (performance.now() - animation.start) / 350),
                                                     previous) : [previous.x, previous.y];
      const mine = { x: fromX, y: fromY, start: performance.now() };
      animation = mine;
      const step = now => {
        if (animation !== mine) return;  // a newer layout took over
        const t = Math.min(1, (now - mine.start) / 350);
        draw(t);
        if (t < 1) requestAnimationFrame(step); else animation = null;
      };
      requestAnimationFrame(step);
    } else {
      draw();
    }
  }

  // --- hit testing ------------------------------------------------------------------------------
  function itemAt(sx, sy) {
    if (!layout) return -1;
    const wx = (sx - view.tx) / view.k, wy = (sy - view.ty) / view.k;
    const w = layout.size, h = layout.size * ASPECT;
    const cell = layout.cells.find(c => wx >= c.x && wx < c.x + c.w && wy >= c.y && wy < c.y + c.h);
    if (!cell) return -1;
    if (state.positions === 'grid') {
      const col = Math.floor((wx - layout.x[cell.items[0]]) / w), row = Math.floor((wy - layout.y[cell.items[0]]) / h);
      if (!cell.items.length || col < 0 || col >= layout.perRow || row < 0) return -1;
      const i = cell.items[row * layout.perRow + col];
      return i === undefined ? -1 : i;
    }
    let best = -1;
    for (const i of cell.items) {  // topmost (last drawn) picture under the pointer
      const x = layout.x[i], y = layout.y[i];
      if (wx >= x && wx <= x + w && wy >= y && wy <= y + h) best = i;
    }
    return best;
  }

  function fieldsTable(i, limit) {
    const rows = limit ? [] : [['id', DATA.ids[i]]];  // the tooltip shows the id as its title
    DATA.columns.forEach(col => {
      if (col.kind === 'text') rows.push([col.name, col.values[i] || '–']);
      else rows.push([col.name, valueText(col, i)]);
    });
    // the tooltip shows the most telling fields first; the panel (no limit) shows them all
    const first = ['time', 'cluster', 'silhouette', 'location', 'day/night', 'split', 'latitude', 'longitude', 'run'];
    const rank = k => { const r = first.indexOf(k); return r < 0 ? first.length : r; };
    const shown = limit ? rows.filter(([k]) => !/^(x|y)( ·|$)/.test(k)).sort((a, b) => rank(a[0]) - rank(b[0]))
      .slice(0, limit) : rows;
    return '<table>' + shown.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('') + '</table>';
  }
  function pictureImage(i) {
    return DATA.thumbs ? `<img src="${esc(DATA.thumbs[i])}" alt="${esc(DATA.ids[i])}" width="192" height="108">` : '';
  }

  function showTooltip(i, sx, sy) {
    if (i < 0) { tooltip.hidden = true; return; }
    tooltip.innerHTML = pictureImage(i) + `<div class="tid">${esc(DATA.ids[i])}</div>` + fieldsTable(i, 10);
    tooltip.hidden = false;
    const pad = 16, tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
    let left = sx + pad, top = sy + pad;
    if (left + tw > stage.clientWidth) left = sx - tw - pad;
    if (top + th > stage.clientHeight) top = Math.max(4, stage.clientHeight - th - 4);
    tooltip.style.left = `${Math.max(4, left)}px`;
    tooltip.style.top = `${top}px`;
  }

  function pictureUrl(i) {
    const path = '/pictures/' + encodeURIComponent(DATA.ids[i]);
    return window.issExplorer ? window.issExplorer(path) : path;
  }
  function showSelection(i) {
    const box = document.getElementById('selection');
    box.innerHTML = i < 0 ? '<p class="hint">Click a picture to keep its details here, with a link to its page.</p>'
      : `<a href="${esc(pictureUrl(i))}" id="picture-link" title="open the picture page">${pictureImage(i)}</a>`
        + `<div class="tid"><b>${esc(DATA.ids[i])}</b> · <a href="${esc(pictureUrl(i))}">open its page →</a></div>`
        + fieldsTable(i, 0);
  }

  // --- panel ------------------------------------------------------------------------------------
  function options(selectedName, includeNone, kinds) {
    const opts = includeNone ? ['<option value="none">(none)</option>'] : [];
    DATA.columns.filter(c => kinds.includes(c.kind)).forEach(c => {
      opts.push(`<option value="${esc(c.name)}"${c.name === selectedName ? ' selected' : ''}>${esc(c.name)}</option>`);
    });
    return opts.join('');
  }

  function buildPanel() {
    const hasXY = DATA.columns.some(c => c.axis === 'x');
    panel.innerHTML = `
      <div><b>${N.toLocaleString('en')}</b> pictures</div>
      <h3>Layout</h3>
      <label for="row-by">Rows by</label><select id="row-by">${options(state.row, true, ['cat', 'num'])}</select>
      <label for="col-by">Columns by</label><select id="col-by">${options(state.column, true, ['cat', 'num'])}</select>
      <label for="positions">Positions in a bin</label>
      <select id="positions"><option value="grid">grid, sorted</option>
        ${hasXY ? '<option value="scatter">embedding x, y</option>' : ''}</select>
      <label for="sort-by">Sort by</label>
      <div class="pair"><select id="sort-by">${options(state.sort, false, ['cat', 'num', 'text'])}</select>
        <select id="sort-order"><option value="asc">ascending</option><option value="desc">descending</option></select></div>
      <h3>Filter</h3>
      <label for="filter-by">Only pictures whose</label>
      <div class="pair"><select id="filter-by">${options(state.filter, true, ['cat'])}</select>
        <select id="filter-value"></select></div>
      <label for="filter-id">Id contains</label><input id="filter-id" type="search" placeholder="e.g. 201711" value="${esc(state.q)}">
      <h3>Look</h3>
      <label for="color-by">Colour by</label><select id="color-by">${options(state.color, true, ['cat', 'num'])}</select>
      <label for="display">Show</label>
      <select id="display"><option value="thumbs">thumbnails</option><option value="color">colour blocks</option></select>
      <button id="reset-view" type="button">Reset zoom</button>
      <div id="dive-status"></div>
      <h3>Legend</h3><div id="legend"></div>
      <h3>Selected picture</h3><div id="selection"></div>
      <p class="hint">Wheel: zoom · drag: pan · double-click: reset · hover: details · click: keep details and a
        link to the picture's page. The address bar keeps these settings: bookmark or share it.</p>`;
    document.getElementById('sort-order').value = state.order;
    const bind = (id, key) => document.getElementById(id).addEventListener('change', e => {
      state[key] = e.target.value;
      if (key === 'row' || key === 'column' || key === 'positions') resetView(false);
      relayout(true);
    });
    bind('row-by', 'row'); bind('col-by', 'column'); bind('color-by', 'color'); bind('sort-by', 'sort');
    bind('sort-order', 'order'); bind('positions', 'positions'); bind('display', 'display');
    document.getElementById('filter-by').addEventListener('change', e => {
      state.filter = e.target.value; state.value = ''; fillFilterValues(); relayout(true);
    });
    bind('filter-value', 'value');
    document.getElementById('filter-id').addEventListener('input', e => { state.q = e.target.value; relayout(false); });
    fillFilterValues();
    document.getElementById('reset-view').addEventListener('click', () => { resetView(true); });
    showSelection(-1);
  }

  function fillFilterValues() {
    const select = document.getElementById('filter-value');
    const col = COLUMNS[state.filter];
    if (!col || col.kind !== 'cat') { select.innerHTML = '<option value="">(all)</option>'; select.disabled = true; return; }
    select.disabled = false;
    const values = col.categories.concat(col.codes.some(c => c < 0) ? ['(missing)'] : []);
    select.innerHTML = '<option value="">(all)</option>' + values.map(v =>
      `<option value="${esc(v)}"${v === state.value ? ' selected' : ''}>${esc(v)}</option>`).join('');
  }

  function syncPanel() {  // settings changed from code (window.dive.set) show in the panel too
    [['row-by', 'row'], ['col-by', 'column'], ['color-by', 'color'], ['sort-by', 'sort'], ['sort-order', 'order'],
     ['positions', 'positions'], ['display', 'display'], ['filter-by', 'filter']].forEach(([id, key]) => {
      const select = document.getElementById(id);
      if (select && select.value !== state[key]) select.value = state[key];
    });
  }

  function updateStatus() {
    const r = layout.rowLabels.length, c = layout.columnLabels.length;
    const shown = layout.nActive < N ? `${layout.nActive.toLocaleString('en')} of ` : '';
    document.getElementById('dive-status').textContent =
      `${r} row${r > 1 ? 's' : ''} × ${c} column${c > 1 ? 's' : ''} · ${shown}${N.toLocaleString('en')} pictures`;
  }

  function updateLegend() {
    const box = document.getElementById('legend');
    const legend = colors.legend;
    if (!legend) { box.innerHTML = '<p class="hint">Choose “Colour by” to colour the pictures.</p>'; return; }
    if (legend.kind === 'cat') {
      box.innerHTML = legend.items.map(it => `<div class="item"><span class="sw" style="background:${it.color}"></span>`
        + `<span>${esc(it.label)}</span><span class="n">${it.count.toLocaleString('en')}</span></div>`).join('');
    } else {
      box.innerHTML = `<div class="ramp" style="background:linear-gradient(to right, ${VIRIDIS.join(',')})"></div>`
        + `<div class="ramp-labels"><span>${fmt(legend.lo)}</span><span>${esc(state.color)}</span><span>${fmt(legend.hi)}</span></div>`;
    }
  }

  // --- interaction ------------------------------------------------------------------------------
  function resetView(redraw) {
    view.k = 1; view.tx = 0; view.ty = 0;
    if (redraw) draw();
  }
  let drag = null;
  canvas.addEventListener('wheel', e => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect(), sx = e.clientX - rect.left, sy = e.clientY - rect.top;
    const factor = Math.exp(-e.deltaY * 0.0015), k = Math.max(0.5, Math.min(60, view.k * factor));
    view.tx = sx - (sx - view.tx) * (k / view.k);
    view.ty = sy - (sy - view.ty) * (k / view.k);
    view.k = k;
    draw();
  }, { passive: false });
  canvas.addEventListener('mousedown', e => { drag = { x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty, moved: false }; });
  window.addEventListener('mouseup', e => {
    if (drag && !drag.moved) {
      const rect = canvas.getBoundingClientRect();
      selected = itemAt(e.clientX - rect.left, e.clientY - rect.top);
      if (e.target === canvas) { showSelection(selected); draw(); }
    }
    drag = null;
    canvas.classList.remove('dragging');
  });
  canvas.addEventListener('mousemove', e => {
    const rect = canvas.getBoundingClientRect(), sx = e.clientX - rect.left, sy = e.clientY - rect.top;
    if (drag && (drag.moved || Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3)) {
      drag.moved = true;
      canvas.classList.add('dragging');
      view.tx = drag.tx + e.clientX - drag.x;
      view.ty = drag.ty + e.clientY - drag.y;
      tooltip.hidden = true;
      draw();
      return;
    }
    const i = itemAt(sx, sy);
    if (i !== hovered) { hovered = i; draw(); }
    showTooltip(i, sx, sy);
  });
  canvas.addEventListener('mouseleave', () => { hovered = -1; tooltip.hidden = true; draw(); });
  canvas.addEventListener('dblclick', () => resetView(true));
  window.addEventListener('resize', () => { resizeCanvas(); relayout(false); });
  window.addEventListener('hashchange', () => {  // an address typed or pasted in the same tab
    readHash();
    document.getElementById('filter-id').value = state.q;
    fillFilterValues();
    relayout(true);
  });

  // --- start --------------------------------------------------------------------------------------
  window.dive = {
    state, view, layout: null, data: DATA, timings: {}, drawn: 0,
    /** Change settings (same keys as `state`) and lay out again, as the panel does. */
    set(patch) {
      Object.assign(state, patch);
      if ('filter' in patch) fillFilterValues();
      relayout(false);
      return window.dive.layout;
    },
    pictureUrl,
    itemAt, positionOf(i) { return [layout.x[i] * view.k + view.tx, layout.y[i] * view.k + view.ty, layout.size * view.k]; },
    get spriteReady() { return spriteReady; },
  };
  buildPanel();
  resizeCanvas();
  relayout(false);
})();
