// The citeqa playground: a reference client of the public API, with no dependencies.
// Offsets from the API count code points; JavaScript strings count UTF-16 code units,
// so every highlight goes through utf16Offsets().
"use strict";

const ABSTAINED = "The documents don't say.";
const state = {
  apiKey: "", // kept in this tab's memory only
  adminKey: "",
  citations: [], // of the answer on screen, in marker order
  documents: new Map(), // "collection/doc_id" -> {doc_id, collection, title, text, sentences}
  messages: [], // the conversation so far, in OpenAI's shape
  busy: false,
};
const $ = (id) => document.getElementById(id);

// --- The API -------------------------------------------------------------

async function api(path, options = {}, key = state.apiKey) {
  const headers = new Headers(options.headers || {});
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && key === state.apiKey) {
    $("key-box").hidden = false;
    $("api-key").focus();
    throw new Error("This server needs an API key: enter it above and try again.");
  }
  if (!response.ok) throw new Error(await problem(response));
  return response;
}

async function problem(response) {
  try {
    const body = await response.json();
    const detail = body.detail || (body.error && body.error.message) || response.statusText;
    return `${response.status}: ${detail}`;
  } catch {
    return `${response.status}: ${response.statusText}`;
  }
}

// Server-Sent Events from a fetch body (EventSource cannot POST or send a key).
async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// A doc_id is unique within its collection: both name a document.
const keyOf = (d) => `${d.collection}/${d.doc_id}`;

async function loadDocument(ref) {
  const key = keyOf(ref);
  if (!state.documents.has(key)) {
    const query = new URLSearchParams({ collection: ref.collection });
    const response = await api(`/v1/documents/${encodeURIComponent(ref.doc_id)}?${query}`);
    state.documents.set(key, await response.json());
  }
  return state.documents.get(key);
}

// --- Offsets ---------------------------------------------------------------

// utf16[i] is where code point i starts, in UTF-16 code units; one entry past the end.
function utf16Offsets(text) {
  const offsets = [0];
  let units = 0;
  for (const ch of text) {
    units += ch.length;
    offsets.push(units);
  }
  return offsets;
}

// --- The answer ------------------------------------------------------------

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = kind;
}

function renderAnswer(text) {
  const box = $("answer-text");
  box.replaceChildren();
  const parts = text.split(/(\[\d+\])/);
  for (const part of parts) {
    const marker = part.match(/^\[(\d+)\]$/);
    const number = marker ? Number(marker[1]) : 0;
    if (marker && state.citations[number - 1]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "marker";
      button.textContent = part;
      button.dataset.n = String(number);
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-label", `Show source ${number} in its document`);
      button.addEventListener("click", () => showCitation(number));
      box.append(button);
    } else if (part) {
      box.append(document.createTextNode(part));
    }
  }
}

function renderSources() {
  const list = $("sources");
  list.replaceChildren();
  state.citations.forEach((c, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = c.text;
    button.addEventListener("click", () => showCitation(i + 1));
    item.append(button);
    list.append(item);
  });
}

function finish(answer, { answerable, degraded }) {
  const article = $("answer");
  article.dataset.state = answerable ? "done" : "abstained";
  if (!answerable) {
    const box = $("answer-text");
    box.replaceChildren();
    const plain = document.createElement("p");
    plain.className = "abstained";
    plain.textContent = ABSTAINED;
    const server = document.createElement("p");
    server.className = "hint";
    server.textContent = answer;
    box.append(plain, server);
  } else {
    renderAnswer(answer);
  }
  renderSources();
  if (degraded) {
    const note = document.createElement("p");
    note.className = "degraded";
    note.textContent =
      "Degraded: the language model failed, so this answer was taken from the sources directly.";
    $("answer-text").append(note);
  }
  setStatus(answerable ? `Answered with ${state.citations.length} cited sentence(s).` : ABSTAINED);
}

function resetAnswer() {
  state.citations = [];
  $("answer").dataset.state = "streaming";
  $("answer-text").replaceChildren();
  $("sources").replaceChildren();
}

async function askOnce(question) {
  const response = await api("/v1/ask", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ question, stream: true }),
  });
  let text = "";
  for await (const { event, data } of serverEvents(response)) {
    if (event === "answer.delta") {
      text += data.text;
      renderAnswer(text);
    } else if (event === "citation") {
      state.citations[data.number - 1] = data;
      renderAnswer(text);
    } else if (event === "error") {
      setStatus(`The answer stopped early: ${data.message}`, "error");
    } else if (event === "done") {
      state.citations = data.citations;
      finish(data.answer, data);
    }
  }
}

async function askInConversation(question) {
  state.messages.push({ role: "user", content: question });
  const response = await api("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: state.messages, stream: false, sources_block: false }),
  });
  const message = (await response.json()).choices[0].message;
  state.messages.push({ role: "assistant", content: message.content });
  state.citations = message.citations || [];
  finish(message.content, {
    answerable: state.citations.length > 0,
    degraded: Boolean(message.degraded),
  });
  const turn = document.createElement("li");
  turn.textContent = `You: ${question} — citeqa: ${message.content}`;
  $("transcript").append(turn);
}

async function onAsk(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.busy) return;
  state.busy = true;
  $("ask-button").disabled = true;
  resetAnswer();
  setStatus("Answering…");
  try {
    if ($("conversation").checked) await askInConversation(question);
    else await askOnce(question);
  } catch (error) {
    $("answer").dataset.state = "failed";
    setStatus(error.message, "error");
  } finally {
    state.busy = false;
    $("ask-button").disabled = false;
  }
}

// --- The document view -----------------------------------------------------

function renderDocument(doc, cited, current) {
  const view = $("document");
  view.replaceChildren();
  const title = document.createElement("h3");
  title.textContent = doc.title;
  view.append(title);
  const utf16 = utf16Offsets(doc.text);
  const slice = (start, end) => doc.text.slice(utf16[start], utf16[end]);
  let at = 0;
  let currentMark = null;
  if (cited.length) {
    for (const c of [...cited].sort((a, b) => a.start - b.start)) {
      if (c.start < at) continue; // the same sentence cited twice is lit once
      view.append(document.createTextNode(slice(at, c.start)));
      const mark = document.createElement("mark");
      mark.textContent = slice(c.start, c.end);
      mark.dataset.n = String(c.number);
      mark.id = `source-${c.number}`;
      mark.tabIndex = -1;
      if (c.number === current) {
        mark.className = "current";
        currentMark = mark;
      }
      view.append(mark);
      at = c.end;
    }
    view.append(document.createTextNode(slice(at, [...doc.text].length)));
  } else {
    for (const s of doc.sentences) {
      view.append(document.createTextNode(slice(at, s.start)));
      const span = document.createElement("span");
      span.className = "sentence";
      span.title = s.sentence_id;
      span.textContent = slice(s.start, s.end);
      view.append(span);
      at = s.end;
    }
    view.append(document.createTextNode(slice(at, [...doc.text].length)));
  }
  $("document-hint").hidden = true;
  return currentMark;
}

async function showCitation(number) {
  const citation = state.citations[number - 1];
  if (!citation) return;
  try {
    const doc = await loadDocument(citation);
    const cited = state.citations
      .map((c, i) => ({ ...c, number: i + 1 }))
      .filter((c) => keyOf(c) === keyOf(citation));
    const mark = renderDocument(doc, cited, number);
    await showPage(doc, citation, number);
    for (const button of document.querySelectorAll("button.marker")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.n) === number));
    }
    if (mark) {
      mark.scrollIntoView({ block: "center", behavior: "smooth" });
      mark.focus({ preventScroll: true });
    }
  } catch (error) {
    setStatus(error.message, "error");
  }
}

// The cited page of a PDF, as an image with the cited sentence lit up, above its text.
async function showPage(doc, citation, number) {
  const view = $("page-view");
  const image = $("page-image");
  if (!doc.page_image || !citation || !citation.page) {
    view.hidden = true;
    return;
  }
  const path = doc.page_image.replace("{page}", String(citation.page));
  const join = path.includes("?") ? "&" : "?";
  const response = await api(`${path}${join}start=${citation.start}&end=${citation.end}`);
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(await response.blob());
  image.alt = `Page ${citation.page} of ${doc.title}, with source ${number} highlighted`;
  $("page-caption").textContent = `[${number}] on page ${citation.page} of ${doc.title}`;
  view.hidden = false;
}

async function openDocument(ref) {
  try {
    const doc = await loadDocument(ref);
    $("page-view").hidden = true;
    renderDocument(doc, [], 0);
    $("document").focus();
  } catch (error) {
    setStatus(error.message, "error");
  }
}

async function refreshDocuments() {
  try {
    const { documents } = await (await api("/v1/documents")).json();
    const list = $("documents");
    list.replaceChildren();
    for (const d of documents) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      const where = d.collection === "default" ? "" : `${d.collection}: `;
      button.textContent = `${where}${d.title} (${d.sentences} sentences)`;
      button.addEventListener("click", () => openDocument(d));
      item.append(button);
      list.append(item);
    }
  } catch (error) {
    setStatus(error.message, "error");
  }
}

// --- Adding documents ------------------------------------------------------

async function upload(file) {
  const status = $("add-status");
  if (!state.adminKey) {
    status.textContent = "Enter the admin key first.";
    $("admin-key").focus();
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  status.textContent = `Adding ${file.name}…`;
  try {
    const response = await api("/v1/documents", { method: "POST", body: form }, state.adminKey);
    const result = await response.json();
    const added = result.documents.map((d) => `${d.title} (${d.sentences} sentences)`).join(", ");
    status.textContent = `Added ${added}.`;
    for (const d of result.documents) state.documents.delete(keyOf(d));
    await refreshDocuments();
  } catch (error) {
    status.textContent = error.message;
  }
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    for (const file of event.dataTransfer.files) upload(file);
  });
  input.addEventListener("change", () => {
    for (const file of input.files) upload(file);
    input.value = "";
  });
}

// --- Start -----------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", onAsk);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("api-key").addEventListener("input", (event) => {
    state.apiKey = event.target.value.trim();
    state.documents.clear();
    if (state.apiKey) refreshDocuments();
  });
  $("admin-key").addEventListener("input", (event) => {
    state.adminKey = event.target.value.trim();
  });
  $("conversation").addEventListener("change", () => {
    state.messages = [];
    $("transcript").replaceChildren();
  });
  setUpDropZone();
  refreshDocuments();
});
