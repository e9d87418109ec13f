// The edgecolbert search page. It talks only to this service's endpoints and treats every document
// as untrusted text: nodes are built with textContent and text nodes, never from HTML strings.
"use strict";

const KEY_STORAGE = "edgecolbert.apiKey";
const $ = (id) => document.getElementById(id);

// Offsets in the service's answers count Unicode code points (Python string indices), while
// JavaScript strings count UTF-16 units: texts are cut as arrays of code points.
const codePoints = (text) => Array.from(text);

function mode() {
  return $("mode-rerank").checked ? "rerank" : "search";
}

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function describeError(status, data) {
  if (data && typeof data.detail === "string") return `${status}: ${data.detail}`;
  if (data && Array.isArray(data.detail)) {
    return `${status}: ` + data.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  return `The service answered ${status}.`;
}

async function call(path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = "Bearer " + key;
  const init = body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(describeError(response.status, data));
  return data;
}

// The text between start and end, each matched token in a <mark> shaded by its contribution.
function shadedText(chars, start, end, spans, maxScore) {
  const fragment = document.createDocumentFragment();
  let cursor = start;
  for (const span of spans) {
    const from = Math.max(span.start, cursor);
    const to = Math.min(span.end, end);
    if (from >= to) continue;
    if (from > cursor) fragment.append(chars.slice(cursor, from).join(""));
    const mark = document.createElement("mark");
    mark.className = "match";
    mark.textContent = chars.slice(from, to).join("");
    const weight = maxScore > 0 ? Math.max(0.12, span.score / maxScore) : 0.5;
    mark.style.backgroundColor = `rgba(255, 190, 0, ${(0.15 + 0.75 * weight).toFixed(2)})`;
    mark.title = `+${span.score.toFixed(3)}`;
    fragment.append(mark);
    cursor = to;
  }
  if (cursor < end) fragment.append(chars.slice(cursor, end).join(""));
  return fragment;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// One result: {label, score, normalized, text, highlights, explainBody}.
function renderResult(result) {
  const item = element("li", "result");
  const meta = element("div", "meta");
  meta.append(element("span", "score", result.score.toFixed(3)));
  if (result.normalized !== undefined) meta.append(element("span", "normalized", `normalized ${result.normalized.toFixed(3)}`));
  meta.append(element("span", "label", result.label));
  const button = element("button", "explain", "Explain");
  button.type = "button";
  button.addEventListener("click", () => explain(item, result));
  meta.append(button);
  item.append(meta);

  const chars = codePoints(result.text);
  const spans = (result.highlights ? result.highlights.spans : []).slice().sort((a, b) => a.start - b.start);
  const maxScore = spans.reduce((best, span) => Math.max(best, span.score), 0);
  const passages = result.highlights ? result.highlights.passages : [];
  const best = passages[0];
  // A passage is worth showing above the text only when it is a part of it.
  if (best && (best.start > 0 || best.end < chars.length)) {
    const passage = element("p", "passage");
    passage.classList.toggle("cut-start", best.start > 0);
    passage.classList.toggle("cut-end", best.end < chars.length);
    passage.append(shadedText(chars, best.start, best.end, spans, maxScore));
    item.append(passage);
  }
  const full = element("p", "fulltext");
  full.append(shadedText(chars, 0, chars.length, spans, maxScore));
  item.append(full);
  return item;
}

async function explain(item, result) {
  for (const chosen of document.querySelectorAll(".result.chosen")) chosen.classList.remove("chosen");
  item.classList.add("chosen");
  setStatus("Explaining…");
  try {
    const data = await call("/v1/explain", { query: $("query").value, ...result.explainBody });
    renderExplanation(data);
    setStatus("");
  } catch (error) {
    setStatus(error.message, true);
  }
}

function renderExplanation(data) {
  $("explanation").hidden = false;
  $("explain-score").textContent = `${data.score.toFixed(3)} (normalized ${data.normalized_score.toFixed(3)})`;
  $("explain-note").textContent = data.truncated
    ? `The document was truncated: the model read its first ${data.encoded_end} characters.`
    : "Each query token adds the similarity of its best document token; the rows add up to the score.";
  const chars = codePoints(data.text);
  const best = data.matches.reduce((most, match) => Math.max(most, match.similarity), 0);
  const body = $("alignment").tBodies[0];
  body.replaceChildren();
  for (const match of data.matches) {
    const row = element("tr", match.span ? "" : "unmatched");
    row.append(element("td", "token", match.query_token));
    row.append(element("td", "token", match.document_token));
    row.append(element("td", "", match.span ? chars.slice(match.span[0], match.span[1]).join("") : "—"));
    const similarity = element("td", "similarity");
    const bar = element("span", "bar");
    bar.style.width = `${best > 0 ? Math.max(0, (match.similarity / best) * 5) : 0}rem`;
    similarity.append(bar, match.similarity.toFixed(3));
    row.append(similarity);
    body.append(row);
  }
}

async function search(event) {
  event.preventDefault();
  const query = $("query").value;
  const k = Number($("k").value) || 10;
  $("results").replaceChildren();
  $("explanation").hidden = true;
  setStatus("Searching…");
  try {
    const results = mode() === "search" ? await searchStore(query, k) : await rerankCandidates(query, k);
    $("results").append(...results.map(renderResult));
    setStatus(results.length ? `${results.length} results` : "No results.");
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function searchStore(query, k) {
  const data = await call("/v1/search", { query, top_k: k, highlights: true });
  return data.hits.map((hit) => ({
    label: hit.id,
    score: hit.score,
    text: hit.text,
    highlights: hit.highlights,
    explainBody: { id: hit.id },
  }));
}

async function rerankCandidates(query, k) {
  const documents = $("candidates").value.split("\n").filter((line) => line.trim());
  if (!documents.length) throw new Error("Paste the candidate documents, one per line.");
  const data = await call("/v1/rerank", { query, documents, top_n: k, return_documents: true, highlights: true });
  return data.results.map((result) => ({
    label: `candidate ${result.index + 1}`,
    score: result.relevance_score,
    normalized: result.normalized_score,
    text: result.document.text,
    highlights: result.highlights,
    explainBody: { document: result.document.text },
  }));
}

function showMode() {
  $("candidates").hidden = mode() !== "rerank";
  $("go").textContent = mode() === "rerank" ? "Rerank" : "Search";
}

// The model name, and whether there is a store to search (only shown to authorised callers).
async function loadHealth() {
  try {
    const health = await call("/health");
    $("model").textContent = health.model || "";
    if (health.model && !health.store) $("mode-rerank").checked = true;
    if (!health.model) setStatus("This service needs an API key: enter it above.");
  } catch (error) {
    setStatus(error.message, true);
  }
  showMode();
}

function start() {
  const key = $("api-key");
  key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  key.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, key.value.trim());
    loadHealth();
  });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showMode);
  $("ask").addEventListener("submit", search);
  loadHealth();
}

start();
