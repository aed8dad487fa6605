/* deepfakescan web page: pick or drop a file, upload with progress, follow the scan, show the
 * result card, keep the history list fresh. Vanilla JS, no network access beyond this server.
 * Everything from the server is inserted with textContent / attributes, never as HTML. */
(() => {
  "use strict";

  const root = document.getElementById("app");
  if (!root) return;

  const MAX_BYTES = Number(root.dataset.maxBytes);
  const SCANS_URL = root.dataset.api;
  const POLL_MS = 400;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const EXTENSIONS = {
    image: ["jpg", "jpeg", "jfif", "png", "webp", "bmp", "tif", "tiff", "gif"],
    audio: ["wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac"],
    video: ["mp4", "m4v", "mov", "webm", "mkv", "avi"],
  };
  const NOUN = { image: "image", audio: "recording", video: "video" };
  const VERDICT = {
    fake: { title: "Likely manipulated", short: "Likely fake" },
    real: { title: "No sign of manipulation", short: "Likely real" },
    uncertain: { title: "Unsure", short: "Unsure" },
    failed: { title: "Error", short: "Error" },
    cancelled: { title: "Cancelled", short: "Cancelled" },
    queued: { title: "Waiting", short: "Waiting" },
    running: { title: "Scanning", short: "Scanning" },
  };
  const COLOR = { fake: "#dc2626", uncertain: "#d97706", real: "#059669" };
  const ERROR_TITLES = {
    too_large: "This file is too large.",
    unsupported_media: "We can't read this kind of file.",
    corrupt_media: "This file seems to be damaged.",
    empty_input: "This file is empty.",
    model_missing: "This server can't analyse this kind of file yet.",
    bad_input: "Something is wrong with this upload.",
    not_found: "This scan no longer exists.",
    interrupted: "The server restarted during this scan.",
    no_evidence: "There was nothing to judge in this file.",
    internal_error: "Something went wrong on our side.",
  };

  const $ = (id) => document.getElementById(id);
  const els = {
    input: $("file-input"),
    dropzone: $("dropzone"),
    form: $("upload-form"),
    error: $("error"),
    status: $("status"),
    statusText: $("status-text"),
    statusPct: $("status-pct"),
    progress: $("progress"),
    bar: $("progress-bar"),
    cancel: $("cancel-button"),
    result: $("result"),
    history: $("history-list"),
    historyTotal: $("history-total"),
  };

  let xhr = null;
  let currentScan = null;
  let pollTimer = null;

  // ------------------------------------------------------------------------------- helpers

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) if (child) node.append(child);
    return node;
  }

  /** A percentage that never claims certainty: 0.9999 is ">99%", not "100%". */
  function pct(p) {
    if (p > 0.99) return ">99%";
    if (p < 0.01) return "<1%";
    return `${Math.round(p * 100)}%`;
  }

  /** The same in a sentence: "more than 99%". */
  function pctWords(p) {
    if (p > 0.99) return "more than 99%";
    if (p < 0.01) return "less than 1%";
    return pct(p);
  }

  function formatBytes(n) {
    if (n >= 1024 * 1024 * 1024) return `${(n / 1024 ** 3).toFixed(1)} GB`;
    if (n >= 1024 * 1024) return `${(n / 1024 ** 2).toFixed(1)} MB`;
    if (n >= 1024) return `${Math.round(n / 1024)} KB`;
    return `${n} bytes`;
  }

  function formatSeconds(s) {
    if (s === null || s === undefined) return "";
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const m = Math.floor(s / 60);
    return `${m}:${String(Math.round(s - m * 60)).padStart(2, "0")}`;
  }

  function badge(kind, large) {
    const label = (VERDICT[kind] || VERDICT.failed)[large ? "title" : "short"];
    return h("span", { class: `badge badge-${kind}${large ? " badge-lg" : ""}`, text: label });
  }

  function verdictColor(p, band) {
    if (!band) return COLOR.uncertain;
    if (p >= band[1]) return COLOR.fake;
    if (p < band[0]) return COLOR.real;
    return COLOR.uncertain;
  }

  // ------------------------------------------------------------------- errors and progress

  function showError(title, detail) {
    els.error.replaceChildren(
      h("p", { class: "font-semibold", text: title }),
      detail ? h("p", { class: "mt-1", text: detail }) : null,
    );
    els.error.hidden = false;
  }

  function errorFromBody(body, fallback) {
    const err = body && body.error ? body.error : { code: "internal_error", message: fallback };
    showError(ERROR_TITLES[err.code] || "The scan failed.", err.message);
  }

  function clearError() {
    els.error.hidden = true;
    els.error.replaceChildren();
  }

  /** ``text`` is announced (aria-live) only when it changes; the percentage is visual, and
   * the progressbar's aria-valuenow carries it for those who ask. */
  function setStatus(text, fraction) {
    els.status.hidden = false;
    if (els.statusText.textContent !== text) els.statusText.textContent = text;
    const value = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    els.statusPct.textContent = `${value}%`;
    els.bar.style.width = `${value}%`;
    els.progress.setAttribute("aria-valuenow", String(value));
    els.progress.setAttribute("aria-valuetext", text);
  }

  function hideStatus() {
    els.status.hidden = true;
  }

  // ------------------------------------------------------------------------ client checks

  function kindOf(file) {
    const major = (file.type || "").split("/")[0];
    if (major in EXTENSIONS) return major;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    for (const [kind, list] of Object.entries(EXTENSIONS)) if (list.includes(ext)) return kind;
    return null;
  }

  /** A message for a file we should not even send, or null. The server checks again. */
  function checkFile(file) {
    if (file.size === 0) return ["This file is empty.", `${file.name} has 0 bytes.`];
    if (file.size > MAX_BYTES) {
      return [
        "This file is too large.",
        `${file.name} is ${formatBytes(file.size)}; the limit is ${formatBytes(MAX_BYTES)}.`,
      ];
    }
    if (!kindOf(file)) {
      return [
        "We can't read this kind of file.",
        `${file.name} doesn't look like a photo, an audio recording or a video. ` +
          "Try a JPEG, PNG, WAV, MP3, MP4 or WebM file.",
      ];
    }
    return null;
  }

  // ------------------------------------------------------------------- upload and polling

  function start(file) {
    clearError();
    stopPolling();
    const problem = checkFile(file);
    if (problem) {
      showError(...problem);
      return;
    }
    els.result.replaceChildren();
    const form = new FormData();
    form.append("file", file, file.name);
    xhr = new XMLHttpRequest();
    xhr.open("POST", SCANS_URL);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) setStatus(`Uploading ${file.name}…`, e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      xhr = null;
      if (body && body.id) {
        currentScan = body;
        setStatus("Uploaded. Waiting for a free worker…", 0);
        follow(body);
      } else {
        hideStatus();
        errorFromBody(body, "The server did not accept the file.");
      }
    });
    xhr.addEventListener("error", () => {
      xhr = null;
      hideStatus();
      showError("The upload failed.", "Check that the server is still running, then try again.");
    });
    xhr.addEventListener("abort", () => {
      xhr = null;
      hideStatus();
    });
    setStatus(`Uploading ${file.name}…`, 0);
    xhr.send(form);
  }

  function stopPolling() {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function follow(scan) {
    const stage = scan.stage && !["queued", "starting"].includes(scan.stage) ? ` (${scan.stage})` : "";
    if (scan.status === "queued") setStatus("Waiting for a free worker…", 0);
    else if (scan.status === "running") setStatus(`Analysing${stage}…`, scan.progress);
    if (scan.status === "done") {
      hideStatus();
      currentScan = null;
      renderResult(scan);
      refreshHistory();
      if (location.pathname !== scan.page_url) history.replaceState(null, "", scan.page_url);
      return;
    }
    if (scan.status === "failed" || scan.status === "cancelled") {
      hideStatus();
      currentScan = null;
      if (scan.status === "failed") errorFromBody({ error: scan.error });
      else showError("Scan cancelled.", "Nothing was kept from this file.");
      refreshHistory();
      return;
    }
    pollTimer = setTimeout(async () => {
      try {
        const response = await fetch(scan.url, { headers: { Accept: "application/json" } });
        const body = await response.json();
        if (!response.ok) {
          hideStatus();
          errorFromBody(body);
          return;
        }
        follow(body);
      } catch (e) {
        pollTimer = setTimeout(() => follow(scan), POLL_MS * 5);
      }
    }, POLL_MS);
  }

  async function cancel() {
    if (xhr) {
      xhr.abort();
      return;
    }
    if (!currentScan) return;
    stopPolling();
    const scan = currentScan;
    currentScan = null;
    hideStatus();
    try {
      await fetch(scan.url, { method: "DELETE" });
    } finally {
      showError("Scan cancelled.", "Nothing was kept from this file.");
      refreshHistory();
    }
  }

  // ------------------------------------------------------------------------- result card

  /** A score in words chosen by its verdict, so the words never contradict the badge beside
   * them: "real" is said as confidence that nothing was manipulated. */
  function verdictSentence(verdict, p, what) {
    if (verdict === "fake") return `We are ${pctWords(p)} confident ${what} has been manipulated.`;
    if (verdict === "real") {
      return `We are ${pctWords(1 - p)} confident ${what} has not been manipulated (a ${pctWords(p)} chance that it was).`;
    }
    return `We estimate a ${pctWords(p)} chance that ${what} has been manipulated: too close to call.`;
  }

  /** True when the file's own record (provenance) set the verdict, not the models. */
  function decidedByRecord(report) {
    return Boolean(report.provenance && report.provenance.decided);
  }

  function explanation(report, noun) {
    const p = report.fake_probability;
    const band = report.uncertain_band;
    if (decidedByRecord(report)) {
      const models = p === null || p === undefined
        ? "On their own, the models had nothing to judge."
        : `On their own, the models say: ${verdictSentence(report.provenance.model_verdict, p, `this ${noun}`)}`;
      return `This ${noun} declares that it was made or edited with AI, so we call it fake whatever it looks like. ${models}`;
    }
    if (p === null || p === undefined) {
      return `We could not judge this ${noun}, so we do not give a number. ${report.reasons[0]}`;
    }
    const first = verdictSentence(report.verdict, p, `this ${noun}`);
    if (!band) return first;
    return (
      `${first} At ${pct(band[1])} or more we call it fake, below ${pct(band[0])} we call it real, ` +
      `and between ${pct(band[0])} and ${pct(band[1])} we say we are unsure. ` +
      "The percentage is calibrated on held-out files, so read it as a rough chance: in our tests it was off by about 5 points on average for voices and 8 to 13 for faces."
    );
  }

  function scaleBar(p, band) {
    if (p === null || p === undefined || !band) return null;
    const [lo, hi] = band;
    return h(
      "div",
      { class: "mt-3", "aria-hidden": "true" },
      h(
        "div",
        { class: "relative h-3 w-full overflow-hidden rounded-full" },
        h("div", { class: "absolute inset-y-0 left-0 bg-emerald-200", style: `width:${lo * 100}%` }),
        h("div", { class: "absolute inset-y-0 bg-amber-200", style: `left:${lo * 100}%;width:${(hi - lo) * 100}%` }),
        h("div", { class: "absolute inset-y-0 right-0 bg-red-200", style: `width:${(1 - hi) * 100}%` }),
        h("div", { class: "absolute inset-y-0 w-1 -translate-x-1/2 rounded bg-slate-900", style: `left:${p * 100}%` }),
      ),
      h(
        "div",
        { class: "mt-1 flex justify-between text-xs text-slate-500" },
        h("span", { text: "real" }),
        h("span", { text: `unsure ${pct(lo)}–${pct(hi)}` }),
        h("span", { text: "fake" }),
      ),
    );
  }

  function mediaLine(report) {
    const m = report.media;
    const parts = [m.type, m.format.toUpperCase()];
    if (m.width && m.height) parts.push(`${m.width}×${m.height}`);
    if (m.duration_s) parts.push(formatSeconds(m.duration_s));
    parts.push(formatBytes(m.size_bytes));
    return parts.join(" · ");
  }

  function artifactUrl(scan, name) {
    const found = (scan.artifacts || []).find((a) => a.name === name);
    return found ? found.url : null;
  }

  // the family classifier's labels, in words (same as detectors/image.py FAMILY_PHRASES)
  const FAMILY_WORDS = {
    blend: "a blended face swap",
    gan: "a GAN-generated face",
    "hand-edited": "a hand-edited face",
    other: "a manipulation it cannot name",
  };
  function familyWords(family) {
    return FAMILY_WORDS[family] || family.replace(/[_-]/g, " ");
  }
  function familyText(face) {
    if (!face.family) return null;
    const probs = face.family_probabilities || {};
    const p = probs[face.family];
    const share = p !== undefined && face.family !== "other" ? ` (${pct(p)})` : "";
    return `looks like ${familyWords(face.family)}${share}`;
  }

  function imageSection(scan, report) {
    const faces = report.faces || [];
    const previewUrl = (scan.artifacts || []).find((a) => a.kind === "preview");
    const section = h("section", { class: "mt-5", "aria-label": "The image and the faces we checked" });
    if (!previewUrl) {
      section.append(h("p", { class: "text-sm text-slate-500", text: "The picture is no longer stored on the server (evidence is kept for a limited time)." }));
    } else {
      const W = report.media.width;
      const H = report.media.height;
      const overlay = svg("svg", {
        viewBox: `0 0 ${W} ${H}`,
        preserveAspectRatio: "none",
        class: "pointer-events-none absolute inset-0 h-full w-full",
        "aria-hidden": "true",
      });
      const heat = svg("g", { class: "heatmaps", visibility: "hidden" });
      const boxes = svg("g", { class: "boxes" });
      overlay.append(heat, boxes);
      const stroke = Math.max(2, Math.round(Math.max(W, H) / 250));
      const placed = new Set();
      faces.forEach((face, i) => {
        const b = face.box;
        const color = COLOR[face.verdict] || COLOR.uncertain;
        const label = `Face ${i + 1}: ${pct(face.fake_probability)}`;
        const fontSize = stroke * 6.5;
        boxes.append(
          svg("rect", { x: b.x, y: b.y, width: b.w, height: b.h, fill: "none", stroke: color, "stroke-width": stroke, rx: stroke }),
          svg("rect", { x: b.x, y: Math.max(0, b.y - stroke * 9), width: label.length * fontSize * 0.62 + stroke * 4, height: stroke * 9, fill: color }),
          svg("text", {
            x: b.x + stroke * 2, y: Math.max(stroke * 7, b.y - stroke * 2.2), fill: "#fff",
            "font-size": fontSize, "font-family": "system-ui, sans-serif", "font-weight": 600,
            text: label,
          }),
        );
        const url = face.heatmap ? artifactUrl(scan, face.heatmap) : null;
        if (url && !placed.has(url)) {
          placed.add(url);
          placeHeatmap(heat, url, b, W, H);
        }
      });
      const img = h("img", {
        src: previewUrl.url,
        alt: faces.length
          ? `The uploaded image with ${faces.length} face${faces.length > 1 ? "s" : ""} outlined`
          : "The uploaded image",
        class: "block h-auto w-full",
      });
      const frame = h("div", { class: "relative mx-auto max-w-xl overflow-hidden rounded-lg border border-slate-200 bg-slate-100" }, img, overlay);
      section.append(frame);
      if (heat.childNodes.length || faces.some((f) => f.heatmap && artifactUrl(scan, f.heatmap))) {
        const toggle = h("button", {
          type: "button",
          class: "rounded-lg border border-slate-300 bg-white px-3 py-1.5 text-sm font-medium hover:bg-slate-50 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-600",
          "aria-pressed": "false",
          text: "Show heatmap",
        });
        toggle.addEventListener("click", () => {
          const on = toggle.getAttribute("aria-pressed") !== "true";
          toggle.setAttribute("aria-pressed", String(on));
          toggle.textContent = on ? "Hide heatmap" : "Show heatmap";
          heat.setAttribute("visibility", on ? "visible" : "hidden");
          // a whole-picture heatmap carries its own boxes and labels: do not draw them twice
          boxes.setAttribute("visibility", on && heat.dataset.whole ? "hidden" : "visible");
        });
        section.append(
          h("div", { class: "mt-3 flex flex-wrap items-center gap-3" }, toggle,
            h("span", { class: "text-xs text-slate-500", text: "The heatmap shows where the model saw the strongest signs of manipulation (red = strongest)." })),
        );
      }
    }
    if (faces.length) {
      section.append(
        h("ul", { class: "mt-3 space-y-1 text-sm", "aria-label": "Faces" },
          faces.map((face, i) =>
            h("li", { class: "flex flex-wrap items-center gap-2" },
              badge(face.verdict),
              h("span", { text: `Face ${i + 1}: ${pct(face.fake_probability)} chance of manipulation` }),
              familyText(face) ? h("span", { class: "text-slate-600", text: `— ${familyText(face)}` }) : null,
            ),
          ),
        ),
      );
    }
    const whole = wholeImageSection(scan, report);
    if (whole) section.append(whole);
    return section;
  }

  /** What the whole-image model said on its own (report.whole_image): its badge, score and
   * sentence from its own verdict and band, and for a photo the picture of the crops it
   * scored. A video's per-frame scores are drawn on the timeline. */
  function wholeImageSection(scan, report) {
    const w = report.whole_image;
    if (!w) return null;
    const video = report.media.type === "video";
    const what = video ? "this video's picture (whole frames, not just faces)" : "this image as a whole (not just its faces)";
    const url = w.artifact ? artifactUrl(scan, w.artifact) : null;
    const described = (report.artifacts || []).find((a) => a.name === w.artifact);
    const caption = video
      ? `${w.frames.length} sampled frames were scored whole, ${w.crops} crops each; this score is the median of the frames' scores, each shown on the timeline.`
      : `${w.crops} crops of the picture were scored at full resolution; red marks the crops that looked generated or edited. This model judges the whole picture, with or without a face.`;
    return h(
      "section",
      { class: "whole-image mt-5 rounded-lg border border-slate-200 p-4", "aria-labelledby": "whole-image-title", "data-verdict": w.verdict },
      h("div", { class: "flex flex-wrap items-center justify-between gap-2" },
        h("h3", { id: "whole-image-title", class: "text-sm font-semibold", text: video ? "Whole frames" : "Whole image" }),
        badge(w.verdict),
      ),
      h("p", { class: "mt-1 text-sm" },
        h("span", { class: "font-semibold tabular-nums", text: pct(w.fake_probability) }), " chance of manipulation"),
      h("p", { class: "whole-image-words mt-1 text-sm text-slate-700", text: verdictSentence(w.verdict, w.fake_probability, what) }),
      scaleBar(w.fake_probability, w.uncertain_band),
      url
        ? h("img", {
            src: url,
            alt: (described && described.description) || "Where the whole-image detector looked",
            class: "mx-auto mt-3 block h-auto w-full max-w-xl rounded-md border border-slate-200",
            loading: "lazy",
          })
        : null,
      w.artifact && !url
        ? h("p", { class: "mt-3 text-sm text-slate-500", text: "The picture of the scored crops is no longer stored on the server." })
        : null,
      h("p", { class: "mt-2 text-xs text-slate-600", text: caption }),
    );
  }

  // where a record was found, in words (report.provenance.items[].source)
  const RECORD_PLACES = {
    c2pa: "C2PA manifest",
    xmp: "XMP metadata",
    iptc: "IPTC metadata",
    exif: "EXIF metadata",
    "png-text": "PNG text",
    id3: "ID3 tag",
    mp4: "MP4 tag",
    vorbis: "Vorbis comment",
    matroska: "Matroska tag",
    riff: "RIFF tag",
  };

  /** Whether a record is vouched for, in plain words: only a C2PA signature can be. */
  function recordTrust(item) {
    if (item.source !== "c2pa") return "not signed: anyone can write or remove it";
    const who = item.signer ? `signed by ${item.signer}` : "signed";
    if (item.validation === "trusted") return `${who}; verified, and the signer is on this server's trust list`;
    if (item.verified) return `${who}; the signature verifies, but the signer is not on this server's trust list`;
    return "its signature or hashes do not verify: the file changed after signing, or the record is forged";
  }

  function recordLine(item) {
    const place = RECORD_PLACES[item.source] || item.source;
    const name = item.field === "active manifest" ? place : `${place} “${item.field}”`;
    const facts = [
      item.generator && item.generator !== item.claim_generator ? `names ${item.generator}` : null,
      item.claim_generator ? `tool: ${item.claim_generator}` : null,
      item.actions && item.actions.length ? `actions: ${item.actions.map((a) => a.replace(/^c2pa\./, "")).join(", ")}` : null,
      item.digital_source_type ? `source type: ${item.digital_source_type}` : null,
    ].filter(Boolean);
    return h("li", { class: "provenance-item", "data-source": item.source, "data-verified": String(item.verified) },
      h("span", { class: "flex flex-wrap items-center gap-2" },
        h("span", { class: "font-medium", text: name }),
        item.declares_ai ? h("span", { class: "badge badge-fake", text: "Declares AI" }) : null,
        item.camera_capture ? h("span", { class: "badge badge-real", text: "Camera capture" }) : null,
      ),
      facts.length ? h("span", { class: "block text-slate-700", text: facts.join(" · ") }) : null,
      h("span", { class: "provenance-trust block text-xs text-slate-600", text: recordTrust(item) }),
      item.source === "c2pa" ? null : h("span", { class: "block truncate text-xs text-slate-500", title: item.value, text: item.value }),
    );
  }

  const PROVENANCE_WORDS = {
    fake: "The file says it was made or edited with AI. We take that at its word: a false claim of AI harms no one, so it decides the verdict whatever the models say.",
    real: "A camera-capture record from a signer on this server's trust list supports “real”. It never overrides the models.",
    none: "These records neither show nor rule out manipulation: metadata is easily removed or rewritten, so we only report them.",
  };

  /** What the file declares about itself (report.provenance), beside the models' evidence:
   * each record with its signer, tool and actions and whether a signature vouches for it. */
  function provenanceSection(report) {
    const pv = report.provenance;
    if (!pv || (!pv.items.length && !pv.warnings.length)) return null;
    return h(
      "section",
      { class: "provenance mt-5 rounded-lg border border-slate-200 p-4", "aria-labelledby": "provenance-title", "data-hint": pv.hint || "none" },
      h("h3", { id: "provenance-title", class: "text-sm font-semibold", text: "What the file says about itself" }),
      pv.items.length ? h("p", { class: "provenance-words mt-1 text-sm text-slate-700", text: PROVENANCE_WORDS[pv.hint || "none"] }) : null,
      pv.items.length ? h("ul", { class: "mt-2 space-y-1 text-sm", "aria-label": "Records found in the file" }, pv.items.map(recordLine)) : null,
      pv.warnings.length
        ? h("ul", { class: "mt-2 list-disc pl-5 text-xs text-amber-900", "aria-label": "Records we could not read" }, pv.warnings.map((w) => h("li", { text: w })))
        : null,
    );
  }

  /** A heatmap artifact is either the whole picture with the heat painted in (shown in place
   * of the photo) or a face-sized overlay (laid over its box): its shape tells which. */
  function placeHeatmap(group, url, box, W, H) {
    const probe = new Image();
    probe.addEventListener("load", () => {
      const ratio = probe.naturalWidth / probe.naturalHeight;
      const whole = Math.abs(ratio - W / H) <= Math.abs(ratio - box.w / box.h);
      const area = whole ? { x: 0, y: 0, width: W, height: H } : { x: box.x, y: box.y, width: box.w, height: box.h };
      const image = svg("image", { href: url, ...area, preserveAspectRatio: "none", opacity: whole ? 1 : 0.6 });
      if (whole) {
        group.dataset.whole = "1";
        group.prepend(image);
      }
      else group.append(image);
    });
    probe.src = url;
  }

  /** A video's whole-frame scores (report.whole_image.frames) as timeline points. */
  function wholeFramePoints(report) {
    const frames = (report.whole_image && report.whole_image.frames) || [];
    return frames.map((f) => ({ start_s: f.time_s, end_s: f.time_s, fake_probability: f.fake_probability, modality: "whole" }));
  }

  /** Window scores over time: one bar per segment (audio) or one line per modality (video),
   * and the whole-image model's score of each sampled frame when it ran. */
  function timeline(report, title, caption) {
    const wholeFrames = wholeFramePoints(report);
    const segments = [...(report.segments || []), ...wholeFrames];
    if (!segments.length) return null;
    const band = report.uncertain_band;
    const end = Math.max(report.media.analysed_duration_s || 0, report.media.duration_s || 0, ...segments.map((s) => s.end_s)) || 1;
    const Wd = 600;
    const Ht = 160;
    const pad = { l: 34, r: 8, t: 8, b: 22 };
    const x = (t) => pad.l + (t / end) * (Wd - pad.l - pad.r);
    const y = (p) => pad.t + (1 - p) * (Ht - pad.t - pad.b);
    const chart = svg("svg", { viewBox: `0 0 ${Wd} ${Ht}`, class: "h-auto w-full", role: "img", "aria-label": title });
    chart.append(svg("rect", { x: pad.l, y: pad.t, width: Wd - pad.l - pad.r, height: Ht - pad.t - pad.b, fill: "#f8fafc" }));
    if (band) {
      chart.append(svg("rect", { x: pad.l, y: y(band[1]), width: Wd - pad.l - pad.r, height: y(band[0]) - y(band[1]), fill: "#fef3c7" }));
    }
    for (const p of [0, 0.5, 1]) {
      chart.append(
        svg("line", { x1: pad.l, x2: Wd - pad.r, y1: y(p), y2: y(p), stroke: "#cbd5e1", "stroke-width": 1 }),
        svg("text", { x: pad.l - 4, y: y(p) + 4, "text-anchor": "end", "font-size": 11, fill: "#475569", text: `${p * 100}%` }),
      );
    }
    chart.append(
      svg("text", { x: pad.l, y: Ht - 6, "font-size": 11, fill: "#475569", text: "0 s" }),
      svg("text", { x: Wd - pad.r, y: Ht - 6, "text-anchor": "end", "font-size": 11, fill: "#475569", text: formatSeconds(end) }),
    );
    const modalities = [...new Set(segments.map((s) => s.modality))];
    const legend = [];
    if (modalities.length === 1 && modalities[0] === "audio") {
      for (const s of segments) {
        const rect = svg("rect", {
          x: x(s.start_s) + 0.5, y: y(s.fake_probability),
          width: Math.max(1, x(s.end_s) - x(s.start_s) - 1), height: y(0) - y(s.fake_probability),
          fill: verdictColor(s.fake_probability, band),
        });
        rect.append(svg("title", { text: `${formatSeconds(s.start_s)}–${formatSeconds(s.end_s)}: ${pct(s.fake_probability)}` }));
        chart.append(rect);
      }
    } else {
      const styles = {
        visual: { color: "#4f46e5", dash: null, name: "Faces (visual)" },
        whole: { color: "#9333ea", dash: "2 3", name: "Whole frames (visual)" },
        audio: { color: "#0891b2", dash: "6 4", name: "Voice (audio)" },
      };
      for (const modality of modalities) {
        const style = styles[modality] || styles.visual;
        const points = segments.filter((s) => s.modality === modality).sort((a, b) => a.start_s - b.start_s);
        const coords = points.map((s) => `${x((s.start_s + s.end_s) / 2)},${y(s.fake_probability)}`).join(" ");
        chart.append(svg("polyline", { points: coords, fill: "none", stroke: style.color, "stroke-width": 2.5, "stroke-dasharray": style.dash }));
        for (const s of points) {
          const dot = svg("circle", { cx: x((s.start_s + s.end_s) / 2), cy: y(s.fake_probability), r: 3.5, fill: style.color });
          dot.append(svg("title", { text: `${style.name} at ${formatSeconds(s.start_s)}: ${pct(s.fake_probability)}` }));
          chart.append(dot);
        }
        legend.push(h("span", { class: "inline-flex items-center gap-1" }, h("span", { class: "inline-block h-1 w-5 rounded", style: `background:${style.color}` }), style.name));
      }
    }
    const rows = segments.map((s) =>
      h("tr", {},
        h("td", { class: "pr-4", text: s.end_s > s.start_s ? `${formatSeconds(s.start_s)} – ${formatSeconds(s.end_s)}` : formatSeconds(s.start_s) }),
        h("td", { class: "pr-4", text: s.modality === "whole" ? "whole frame" : s.modality }),
        h("td", { text: pct(s.fake_probability) })),
    );
    return h(
      "figure",
      { class: "mt-5" },
      h("h3", { class: "mb-2 text-sm font-semibold", text: title }),
      chart,
      legend.length ? h("div", { class: "mt-1 flex gap-4 text-xs text-slate-600" }, legend) : null,
      h("figcaption", { class: "mt-1 text-xs text-slate-600", text: caption }),
      h("details", { class: "mt-1 text-xs" },
        h("summary", { class: "cursor-pointer rounded text-slate-600 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-600", text: "Show the scores as a table" }),
        h("table", { class: "mt-1" }, h("thead", {}, h("tr", {}, h("th", { class: "pr-4 text-left", text: "Time" }), h("th", { class: "pr-4 text-left", text: "Signal" }), h("th", { class: "text-left", text: "Chance of manipulation" }))), h("tbody", {}, rows)),
      ),
    );
  }

  function framesSection(scan, report) {
    const thumbs = (scan.artifacts || []).filter((a) => a.kind === "thumbnail");
    const described = new Map((report.artifacts || []).map((a) => [a.name, a.description || ""]));
    const parts = [];
    if (thumbs.length) {
      parts.push(
        h("h3", { class: "mb-2 mt-5 text-sm font-semibold", text: "Most suspicious frames" }),
        h("ul", { class: "grid grid-cols-2 gap-3 sm:grid-cols-4" },
          thumbs.map((t) =>
            h("li", {}, h("figure", {},
              h("img", { src: t.url, alt: described.get(t.name) || `Frame ${t.name}`, class: "w-full rounded-md border border-slate-200", loading: "lazy" }),
              described.get(t.name) ? h("figcaption", { class: "mt-1 text-xs text-slate-600", text: described.get(t.name) }) : null,
            )),
          ),
        ),
      );
    }
    const tracks = report.tracks || [];
    if (tracks.length) {
      parts.push(
        h("ul", { class: "mt-3 space-y-1 text-sm", "aria-label": "People in the video" },
          tracks.map((t, i) =>
            h("li", { class: "flex flex-wrap items-center gap-2" }, badge(t.verdict),
              h("span", { text: `Person ${i + 1}: ${pct(t.fake_probability)} chance of manipulation, ${t.frames_judged_fake} of ${t.frame_times_s.length} frames judged fake${t.family ? `; looks like ${familyWords(t.family)}` : ""}` }),
            ),
          ),
        ),
      );
    }
    return parts.length ? h("section", {}, parts) : null;
  }

  /** What the big number is: when the file's own record decided, it is still the models'. */
  function scoreCaption(report) {
    const decided = decidedByRecord(report);
    if (report.fake_probability === null) return decided ? "no model score: the file's own record decided" : "no score: nothing to judge";
    return decided ? "chance of manipulation, by the models alone" : "chance of manipulation";
  }

  function renderResult(scan) {
    const report = scan.report;
    const noun = NOUN[report.media.type] || "file";
    const p = report.fake_probability;
    const card = h(
      "article",
      { class: "rounded-xl border border-slate-200 bg-white p-4 shadow-sm sm:p-6", "data-verdict": report.verdict, "data-media": report.media.type },
      h("header", { class: "flex flex-wrap items-start justify-between gap-3" },
        h("div", { class: "min-w-0" },
          h("h2", { id: "result-title", class: "truncate text-lg font-semibold", text: report.source_name || scan.source_name }),
          h("p", { class: "text-xs text-slate-500", text: mediaLine(report) }),
        ),
        badge(report.verdict, true),
      ),
      h("div", { class: "mt-4 flex flex-wrap items-baseline gap-x-3" },
        h("span", { class: "text-4xl font-bold tabular-nums", text: p === null ? "—" : pct(p) }),
        h("span", { class: "text-slate-600", text: scoreCaption(report) }),
      ),
      h("p", { class: "explanation mt-2 text-sm text-slate-700", text: explanation(report, noun) }),
      scaleBar(p, report.uncertain_band),
      report.media.type === "image" ? imageSection(scan, report) : null,
      report.media.type === "audio"
        ? timeline(report, "How suspicious each part of the recording sounds", "Each bar is a stretch of the recording: taller and redder means more likely synthetic. The amber band is where we are unsure.")
        : null,
      report.media.type === "video"
        ? timeline(
            report,
            report.whole_image ? "Faces, whole frames and voice over time" : "Faces and voice over time",
            "Each point is a stretch of the video: higher means more likely manipulated. The amber band is where we are unsure.",
          )
        : null,
      report.media.type === "video" ? wholeImageSection(scan, report) : null,
      report.media.type === "video" ? framesSection(scan, report) : null,
      provenanceSection(report),
      h("h3", { class: "mt-5 text-sm font-semibold", text: "Why" }),
      h("ul", { class: "reasons mt-1 list-disc space-y-1 pl-5 text-sm" }, report.reasons.map((r) => h("li", { text: r }))),
      report.warnings && report.warnings.length
        ? h("div", { class: "mt-4 rounded-lg border border-amber-300 bg-amber-50 px-3 py-2 text-sm text-amber-900" },
            h("p", { class: "font-semibold", text: "Limits of this result" }),
            h("ul", { class: "list-disc pl-5" }, report.warnings.map((w) => h("li", { text: w }))))
        : null,
      h("details", { class: "mt-4 text-xs text-slate-600" },
        h("summary", { class: "cursor-pointer rounded focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-600", text: "Technical details" }),
        h("ul", { class: "mt-1 space-y-0.5" },
          (report.models || []).map((m) => h("li", { text: `Model: ${m.name} ${m.version} (${m.role})` })),
          report.threshold !== null ? h("li", { text: `Threshold ${pct(report.threshold)}` }) : null,
          report.timings_ms && report.timings_ms.total !== undefined ? h("li", { text: `Analysed in ${(report.timings_ms.total / 1000).toFixed(2)} s` }) : null,
          h("li", {}, h("a", { href: scan.url, class: "text-indigo-700 underline", text: "Full report (JSON)" })),
        ),
      ),
      h("div", { class: "mt-5" },
        h("button", {
          type: "button",
          class: "rounded-lg bg-indigo-700 px-4 py-2 text-sm font-medium text-white hover:bg-indigo-800 focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-600 focus-visible:ring-offset-2",
          text: "Check another file",
          onclick: () => {
            els.input.value = "";
            els.input.focus();
            els.input.click();
          },
        }),
      ),
    );
    els.result.replaceChildren(card);
    els.result.focus({ preventScroll: true });
    els.result.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // ------------------------------------------------------------------------------ history

  async function refreshHistory() {
    try {
      const response = await fetch(`${SCANS_URL}?limit=20`, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const page = await response.json();
      els.historyTotal.textContent = String(page.total);
      if (!page.items.length) return;
      els.history.replaceChildren(
        ...page.items.map((item) => {
          const state = item.status === "done" ? item.verdict : item.status;
          return h("li", {},
            h("a", {
              href: item.page_url,
              class: "flex items-center gap-3 px-4 py-3 hover:bg-slate-50 focus:outline-none focus-visible:bg-indigo-50 focus-visible:ring-2 focus-visible:ring-inset focus-visible:ring-indigo-600",
            },
              h("span", { class: `badge badge-${state} shrink-0`, text: VERDICT[state].short }),
              h("span", { class: "min-w-0 flex-1 truncate", text: item.source_name }),
              h("span", { class: "hidden text-xs text-slate-500 sm:inline", text: item.media_type || "" }),
              h("time", { class: "shrink-0 text-xs text-slate-500", datetime: item.created_at, text: item.created_at.slice(0, 16).replace("T", " ") }),
            ),
          );
        }),
      );
      localTimes(els.history);
    } catch (e) {
      /* the list is a convenience; the next scan refreshes it */
    }
  }

  // ------------------------------------------------------------------------------- wiring

  els.input.addEventListener("change", () => {
    if (els.input.files && els.input.files[0]) start(els.input.files[0]);
  });
  els.form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (els.input.files && els.input.files[0]) start(els.input.files[0]);
  });
  for (const type of ["dragenter", "dragover"]) {
    els.dropzone.addEventListener(type, (e) => {
      e.preventDefault();
      els.dropzone.dataset.drag = "on";
    });
  }
  for (const type of ["dragleave", "drop"]) {
    els.dropzone.addEventListener(type, () => {
      delete els.dropzone.dataset.drag;
    });
  }
  els.dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) start(file);
  });
  els.cancel.addEventListener("click", cancel);

  function localTimes(scope) {
    for (const node of scope.querySelectorAll("time[datetime]")) {
      const when = new Date(node.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) {
        node.textContent = when.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
      }
    }
  }
  localTimes(els.history);

  const initial = root.dataset.scanId;
  if (initial) {
    fetch(`${SCANS_URL}/${encodeURIComponent(initial)}`)
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) errorFromBody(body);
        else {
          if (body.status === "queued" || body.status === "running") currentScan = body;
          follow(body);
        }
      })
      .catch(() => showError("Could not load this scan.", "Check that the server is running."));
  }
})();
