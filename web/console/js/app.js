// The console: hash routes #/ (projects + upload), #/project/ID (stems, analysis, mixes), #/library.
// It speaks only the public API (api.js) and the WebSocket (ws.js). It never polls: live state comes
// from WebSocket events.

import WaveSurfer from "../vendor/wavesurfer.js-7.10.1/wavesurfer.esm.js";
import * as api from "./api.js";
import { getWsBase, setWsBase, watch } from "./ws.js";

// Bring-your-own stems take these; a separated project has its model's own set (project.stems).
const STEMS = ["drums", "bass", "vocals", "other"];
const MODES = ["auto", "percussive", "tonal"];
const FORMATS = ["wav", "flac", "mp3"];
const F0_RANGE_HZ = [30, 1200];

// What the current view opened (sockets, players, object URLs); closed when the view changes.
let cleanups = [];
function onLeave(fn) {
  cleanups.push(fn);
}
function leaveView() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.warn("cleanup failed", err);
    }
  }
}

/** Element builder: h("button", {type: "button", onclick}, "text", child...). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function errorBox(id) {
  return h("p", { class: "error", role: "alert", id });
}

function showError(box, err) {
  box.textContent = err ? err.message || String(err) : "";
}

function statusBadge(status) {
  return h("span", { class: "status", dataset: { status } }, status);
}

function setStatus(badge, status) {
  badge.dataset.status = status;
  badge.textContent = status;
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  onLeave(() => URL.revokeObjectURL(url));
  return url;
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

// ------------------------------------------------------------------------------------------ key

function showKeyView(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("view").replaceChildren();
  const view = document.getElementById("key-view");
  view.hidden = false;
  document.getElementById("ws-input").value = getWsBase();
  showError(document.getElementById("key-error"), message ? { message } : null);
  document.getElementById("key-input").focus();
}

async function onKeySubmit(event) {
  event.preventDefault();
  const key = document.getElementById("key-input").value.trim();
  const box = document.getElementById("key-error");
  api.setKey(key);
  setWsBase(document.getElementById("ws-input").value.trim());
  try {
    await api.call("GET", "/projects?limit=1");
  } catch (err) {
    api.setKey("");
    showError(box, err);
    return;
  }
  document.getElementById("key-input").value = "";
  route();
}

// ------------------------------------------------------------------------------------------ projects

function progressBar(value, label) {
  return h("progress", { max: 100, value: value ?? 0, "aria-label": label });
}

// A drop zone around a file picker: the files dropped on it or chosen with the picker go to onFiles (an
// array); it is highlighted while files are dragged over it.
function dropZone(id, picker, onFiles, ...labels) {
  picker.addEventListener("change", () => picker.files.length && onFiles([...picker.files]));
  const zone = h("div", { class: "dropzone", id }, ...labels, h("br"), picker);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
  return zone;
}

// A new item at the top of its list, in place of the list's "none yet" line.
function prependItem(list, item) {
  list.prepend(item);
  list.closest("section").querySelector(".empty")?.remove();
}

function projectItem(project) {
  const badge = statusBadge(project.status);
  const bar = progressBar(project.progress, `progress of ${project.name}`);
  const detail = h("span", { class: "muted detail" }, project.error || "");
  const item = h(
    "li",
    { dataset: { projectId: project.project_id }, class: "project" },
    h(
      "div",
      { class: "grow" },
      h("a", { href: `#/project/${project.project_id}` }, project.name),
      " ",
      badge,
      " ",
      h("span", { class: "muted" }, project.source_kind === "stems" ? "own stems" : "song"),
      h("br"),
      detail,
    ),
    h("span", { class: "muted" }, when(project.created_at)),
    bar,
  );
  if (!["ready", "failed"].includes(project.status)) {
    const stop = watch("project", project.project_id, (event) => {
      setStatus(badge, event.status);
      bar.value = event.status === "ready" ? 100 : event.progress;
      detail.textContent = event.status === "failed" ? event.detail || "failed" : event.detail || "";
    });
    onLeave(stop);
  } else {
    bar.value = project.status === "ready" ? 100 : project.progress;
  }
  return item;
}

function uploadPanel(list) {
  const error = errorBox("upload-error");
  const bar = progressBar(0, "upload progress");
  bar.hidden = true;
  const note = h("p", { class: "muted", id: "upload-note" });
  const name = h("input", { type: "text", id: "project-name", maxlength: 200, placeholder: "optional" });
  const picker = h("input", { type: "file", id: "song-file", accept: "audio/*,.wav,.flac,.mp3,.ogg,.aiff,.m4a" });

  async function send(file) {
    showError(error, null);
    bar.hidden = false;
    bar.value = 0;
    const route = api.goesPresigned(file.size) ? "straight to storage" : "through the API";
    note.textContent = `Uploading ${file.name} (${(file.size / 1048576).toFixed(1)} MB, ${route})…`;
    try {
      const id = await api.uploadSong(file, name.value.trim(), (f) => (bar.value = Math.round(f * 100)));
      bar.value = 100;
      note.textContent = `Uploaded ${file.name}.`;
      const project = await api.call("GET", `/projects/${id}`);
      prependItem(list, projectItem(project));
      name.value = "";
      picker.value = "";
    } catch (err) {
      note.textContent = "";
      showError(error, err);
    } finally {
      bar.hidden = true;
    }
  }

  const zone = dropZone(
    "dropzone",
    picker,
    (files) => send(files[0]),
    h("p", {}, "Drop a song here, or choose a file:"),
    h("label", { for: "song-file", class: "muted" }, "Song file (wav, flac, mp3, ogg, aiff, m4a)"),
  );

  // Bring your own stems.
  const stemError = errorBox("stems-error");
  const stemInputs = Object.fromEntries(
    STEMS.map((stem) => [stem, h("input", { type: "file", id: `stem-${stem}`, accept: "audio/*" })]),
  );
  const stemsForm = h(
    "form",
    {
      class: "stack",
      id: "stems-form",
      onsubmit: async (e) => {
        e.preventDefault();
        showError(stemError, null);
        const chosen = Object.fromEntries(
          Object.entries(stemInputs)
            .filter(([, input]) => input.files[0])
            .map(([stem, input]) => [stem, input.files[0]]),
        );
        if (!Object.keys(chosen).length) {
          showError(stemError, { message: "choose at least one stem file" });
          return;
        }
        bar.hidden = false;
        try {
          const id = await api.uploadStems(chosen, name.value.trim(), (f) => (bar.value = Math.round(f * 100)));
          prependItem(list, projectItem(await api.call("GET", `/projects/${id}`)));
          stemsForm.reset();
        } catch (err) {
          showError(stemError, err);
        } finally {
          bar.hidden = true;
        }
      },
    },
    STEMS.map((stem) => h("label", { class: "row" }, h("span", { style: "min-width:4em" }, stem), stemInputs[stem])),
    h("button", { type: "submit" }, "Upload stems"),
    stemError,
  );

  return h(
    "section",
    { class: "card", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "New project"),
    h("label", { for: "project-name" }, "Project name "),
    name,
    zone,
    bar,
    note,
    error,
    h("details", {}, h("summary", {}, "Bring your own stems instead"), stemsForm),
  );
}

async function projectsView(view) {
  const list = h("ul", { class: "items", id: "projects" });
  const error = errorBox("projects-error");
  const listSection = h(
    "section",
    { class: "card", "aria-labelledby": "projects-title" },
    h("h2", { id: "projects-title" }, "Projects"),
    error,
    list,
  );
  view.replaceChildren(uploadPanel(list), listSection);
  try {
    const projects = await api.listAll("/projects", 2);
    if (!projects.length) listSection.append(h("p", { class: "muted empty" }, "No projects yet: upload a song."));
    for (const project of projects) list.append(projectItem(project));
  } catch (err) {
    showError(error, err);
  }
}

// ------------------------------------------------------------------------------------------ project

/** Onsets as ticks, f0 as a line (log frequency), over a stem's waveform. */
function drawAnalysis(canvas, analysis) {
  const rect = canvas.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(rect.width * ratio));
  canvas.height = Math.max(1, Math.round(rect.height * ratio));
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const duration = analysis.n_samples / analysis.sample_rate;
  if (!(duration > 0)) return;
  const x = (t) => (t / duration) * canvas.width;
  ctx.strokeStyle = "rgba(208, 52, 44, 0.85)";
  ctx.lineWidth = Math.max(1, ratio);
  for (const t of analysis.onsets_s || []) {
    ctx.beginPath();
    ctx.moveTo(x(t), 0);
    ctx.lineTo(x(t), canvas.height * 0.25);
    ctx.stroke();
  }
  const f0 = analysis.f0_hz || [];
  const voiced = analysis.voiced_prob || [];
  const [lo, hi] = F0_RANGE_HZ.map(Math.log);
  const y = (hz) => canvas.height * (1 - (Math.log(hz) - lo) / (hi - lo));
  ctx.strokeStyle = "rgba(15, 138, 95, 0.95)";
  ctx.lineWidth = 2 * ratio;
  ctx.beginPath();
  let drawing = false;
  f0.forEach((hz, i) => {
    const ok = hz && hz > F0_RANGE_HZ[0] && hz < F0_RANGE_HZ[1] && (voiced[i] ?? 1) >= 0.5;
    if (!ok) {
      drawing = false;
      return;
    }
    const px = x(i * analysis.hop_s);
    if (drawing) ctx.lineTo(px, y(hz));
    else ctx.moveTo(px, y(hz));
    drawing = true;
  });
  ctx.stroke();
}

function stemPlayer(project, stem, players, audible) {
  const summary = (project.analysis || {})[stem];
  const error = errorBox(`stem-error-${stem}`);
  const wave = h("div", { class: "wave", id: `wave-${stem}` });
  const overlay = h("canvas", { class: "overlay", "aria-hidden": "true" });
  const play = h("button", { type: "button", disabled: true, "aria-label": `Play ${stem}` }, "Play");
  const solo = h("button", { type: "button", class: "secondary", "aria-pressed": "false" }, "Solo");
  const mute = h("button", { type: "button", class: "secondary", "aria-pressed": "false" }, "Mute");
  const legend = h("span", { class: "legend" });
  const card = h(
    "div",
    { class: "stem", dataset: { stem } },
    h(
      "div",
      { class: "row" },
      h("h3", {}, stem),
      summary
        ? h(
            "span",
            { class: "muted" },
            `${summary.kind}, ${summary.onsets} onsets, voiced ${Math.round((summary.voiced_ratio || 0) * 100)} %`,
          )
        : null,
    ),
    wave,
    h("div", { class: "row" }, play, solo, mute, legend),
    error,
  );
  const state = { stem, solo: false, mute: false, player: null };
  players.push(state);
  solo.addEventListener("click", () => {
    state.solo = !state.solo;
    solo.setAttribute("aria-pressed", String(state.solo));
    audible();
  });
  mute.addEventListener("click", () => {
    state.mute = !state.mute;
    mute.setAttribute("aria-pressed", String(state.mute));
    audible();
  });

  (async () => {
    try {
      const blob = await api.fetchBlob(project.stem_urls[stem]);
      const player = WaveSurfer.create({
        container: wave,
        url: objectUrl(blob),
        height: 64,
        waveColor: "#8aa4d6",
        progressColor: "#2457c5",
        cursorColor: "#12213f",
        dragToSeek: true,
        normalize: true,
      });
      state.player = player;
      onLeave(() => player.destroy());
      player.on("ready", () => {
        play.disabled = false;
        audible();
      });
      player.on("play", () => (play.textContent = "Pause"));
      player.on("pause", () => (play.textContent = "Play"));
      player.on("error", (err) => showError(error, { message: `cannot play ${stem}: ${err}` }));
      play.addEventListener("click", () => player.playPause());
    } catch (err) {
      showError(error, err);
    }
  })();

  if (project.status === "ready") {
    (async () => {
      try {
        const analysis = await api.fetchJson(`${api.API}/projects/${project.project_id}/analysis/${stem}`);
        wave.append(overlay);
        const draw = () => drawAnalysis(overlay, analysis);
        draw();
        const observer = new ResizeObserver(draw);
        observer.observe(wave);
        onLeave(() => observer.disconnect());
        const voiced = (analysis.voiced_prob || []).filter((p) => p >= 0.5).length;
        legend.append(h("span", { class: "tick" }, `| ${analysis.onsets_s.length} onsets`));
        if (voiced) legend.append("  ", h("span", { class: "f0" }, "— f0"));
        overlay.dataset.onsets = String(analysis.onsets_s.length);
      } catch (err) {
        showError(error, err);
      }
    })();
  }
  return card;
}

function mixEditor(project, sounds, mixesList) {
  const ready = sounds.filter((s) => s.status === "ready");
  const error = errorBox("mix-error");
  const bar = progressBar(0, "render progress");
  bar.hidden = true;
  const state = h("p", { class: "muted", id: "mix-state" });
  const projectStems = Object.keys(project.stems).filter((stem) => project.stems[stem]);
  const stemSets = projectStems.map((stem) =>
    h(
      "fieldset",
      { dataset: { stem } },
      h("legend", {}, stem),
      h("label", {}, h("input", { type: "checkbox", name: `${stem}.enabled`, checked: true }), " enabled"),
      h(
        "label",
        {},
        "volume ",
        h("input", { type: "range", name: `${stem}.volume`, min: 0, max: 2, step: 0.05, value: 1 }),
      ),
      h(
        "label",
        {},
        "style sound",
        h(
          "select",
          { name: `${stem}.style_sound_id` },
          h("option", { value: "" }, "— original audio —"),
          ready.map((s) => h("option", { value: s.sound_id }, s.name)),
        ),
      ),
      h(
        "label",
        {},
        "mode",
        h("select", { name: `${stem}.mode` }, MODES.map((m) => h("option", { value: m }, m))),
      ),
    ),
  );
  const form = h(
    "form",
    { id: "mix-form", class: "stack" },
    ready.length ? null : h("p", { class: "muted" }, "Your library has no ready style sound yet: ", h("a", { href: "#/library" }, "add one"), "."),
    h("div", { class: "mix-grid" }, stemSets),
    h(
      "fieldset",
      {},
      h("legend", {}, "Settings"),
      h(
        "label",
        {},
        "grain duration (ms) ",
        h("input", { type: "number", name: "grain_duration_ms", min: 10, max: 1000, value: 120, required: true }),
      ),
      h("label", {}, h("input", { type: "checkbox", name: "use_pitch_mapping", checked: true }), " pitch mapping"),
      h("label", {}, h("input", { type: "checkbox", name: "use_envelope", checked: true }), " follow the envelope"),
      h(
        "label",
        {},
        "output format ",
        h("select", { name: "output_format" }, FORMATS.map((f) => h("option", { value: f }, f))),
      ),
      h(
        "label",
        {},
        "seed ",
        h("input", { type: "number", name: "seed", min: 0, step: 1, value: 0, required: true }),
      ),
      h(
        "label",
        {},
        "loudness target (LUFS, empty: none) ",
        h("input", { type: "number", name: "target_lufs", min: -40, max: 0, step: 0.5 }),
      ),
    ),
    h("button", { type: "submit", id: "render" }, "Render mix"),
    bar,
    state,
    error,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, null);
    const data = new FormData(form);
    const config = {};
    for (const stem of projectStems) {
      config[stem] = {
        enabled: data.get(`${stem}.enabled`) === "on",
        volume: Number(data.get(`${stem}.volume`)),
        style_sound_id: data.get(`${stem}.style_sound_id`) || null,
        mode: data.get(`${stem}.mode`),
      };
    }
    const settings = {
      grain_duration_ms: Number(data.get("grain_duration_ms")),
      use_pitch_mapping: data.get("use_pitch_mapping") === "on",
      use_envelope: data.get("use_envelope") === "on",
      output_format: data.get("output_format"),
      seed: Number(data.get("seed")),
      target_lufs: data.get("target_lufs") === "" ? null : Number(data.get("target_lufs")),
    };
    const button = form.querySelector("#render");
    button.disabled = true;
    try {
      const accepted = await api.call("POST", "/mix", { project_id: project.project_id, config, settings });
      const mix = await api.call("GET", `/mix/${accepted.mix_id}`);
      prependItem(mixesList, mixItem(mix));
      state.textContent = "Queued: follow it below.";
    } catch (err) {
      showError(error, err);
    } finally {
      button.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "mix-title" }, h("h2", { id: "mix-title" }, "Mix"), form);
}

function mixItem(mix) {
  const badge = statusBadge(mix.status);
  const bar = progressBar(mix.status === "completed" ? 100 : mix.progress, `progress of mix ${mix.mix_id}`);
  const error = h("span", { class: "error" }, mix.error || "");
  const actions = h("div", { class: "row" });
  const item = h(
    "li",
    { class: "mix", dataset: { mixId: mix.mix_id } },
    h(
      "div",
      { class: "grow" },
      h("span", {}, `${when(mix.created_at)} · ${mix.output_format} `),
      badge,
      " ",
      error,
    ),
    actions,
    bar,
  );
  const loadError = errorBox(null);
  item.append(loadError);

  function offerResult(status) {
    if (status !== "completed" || actions.childElementCount) return;
    const listen = h("button", { type: "button", class: "secondary" }, "Play");
    actions.append(listen);
    listen.addEventListener("click", async () => {
      listen.disabled = true;
      try {
        const blob = await api.fetchBlob(`${api.API}/mix/${mix.mix_id}/download`);
        const url = objectUrl(blob);
        const audio = h("audio", { controls: true, src: url, "aria-label": `mix ${mix.mix_id}` });
        const link = h("a", { href: url, download: `mix-${mix.mix_id}.${mix.output_format}`, class: "download" }, "Download");
        listen.replaceWith(link);
        item.append(audio);
        await audio.play();
      } catch (err) {
        listen.disabled = false;
        showError(loadError, err);
      }
    });
  }

  if (["completed", "failed"].includes(mix.status)) {
    offerResult(mix.status);
  } else {
    onLeave(
      watch("mix", mix.mix_id, (event) => {
        setStatus(badge, event.status);
        bar.value = event.status === "completed" ? 100 : event.progress;
        if (event.status === "failed") error.textContent = event.detail || "failed";
        offerResult(event.status);
      }),
    );
  }
  return item;
}

async function projectView(view, projectId) {
  const error = errorBox("project-error");
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"), error);
  let project;
  try {
    project = await api.call("GET", `/projects/${encodeURIComponent(projectId)}`);
  } catch (err) {
    view.replaceChildren(h("p", {}, h("a", { href: "#/" }, "← Projects")), error);
    showError(error, err);
    return;
  }
  const badge = statusBadge(project.status);
  const bar = progressBar(project.status === "ready" ? 100 : project.progress, "project progress");
  const detail = h("span", { class: "muted" }, project.error || "");
  const remove = h("button", { type: "button", class: "danger" }, "Delete project");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete "${project.name}", its stems and mixes?`)) return;
    try {
      await api.call("DELETE", `/projects/${project.project_id}`);
      location.hash = "#/";
    } catch (err) {
      showError(error, err);
    }
  });
  const head = h(
    "section",
    { class: "card", "aria-labelledby": "project-title" },
    h("p", {}, h("a", { href: "#/" }, "← Projects")),
    h("h2", { id: "project-title" }, project.name, " ", badge),
    h(
      "p",
      { class: "muted" },
      project.duration_s ? `${project.duration_s.toFixed(1)} s · ` : "",
      project.source_kind === "stems" ? "own stems" : "song",
      " · ",
      when(project.created_at),
    ),
    bar,
    detail,
    error,
    h("div", { class: "row" }, remove),
  );
  view.replaceChildren(head);
  if (project.status !== "ready") {
    if (project.status !== "failed") {
      onLeave(
        watch("project", project.project_id, (event) => {
          setStatus(badge, event.status);
          bar.value = event.progress;
          detail.textContent = event.detail || "";
          if (event.status === "ready") route(); // the stems and the mix editor are there now
        }),
      );
    }
    return;
  }

  // Stems.
  const players = [];
  const audible = () => {
    const anySolo = players.some((p) => p.solo);
    for (const p of players) p.player?.setMuted(p.mute || (anySolo && !p.solo));
  };
  const playAll = h("button", { type: "button", id: "play-all" }, "Play all");
  playAll.addEventListener("click", () => {
    const loaded = players.filter((p) => p.player);
    const playing = loaded.some((p) => p.player.isPlaying());
    const at = loaded[0]?.player.getCurrentTime() || 0;
    for (const p of loaded) {
      if (playing) p.player.pause();
      else {
        p.player.setTime(at);
        p.player.play();
      }
    }
    playAll.textContent = playing ? "Play all" : "Pause all";
  });
  const stems = h(
    "section",
    { class: "card", "aria-labelledby": "stems-title" },
    h("div", { class: "row" }, h("h2", { id: "stems-title" }, "Stems"), playAll),
    h("p", { class: "legend" }, "Red ticks: onsets. Green line: the pitch (f0) where the stem is voiced (log scale, 30–1200 Hz)."),
    Object.keys(project.stem_urls).map((stem) => stemPlayer(project, stem, players, audible)),
  );
  view.append(stems);

  // Mix editor and earlier mixes.
  const mixesList = h("ul", { class: "items", id: "mixes" });
  const mixesError = errorBox("mixes-error");
  const mixes = h(
    "section",
    { class: "card", "aria-labelledby": "mixes-title" },
    h("h2", { id: "mixes-title" }, "Mixes of this project"),
    mixesError,
    mixesList,
  );
  let sounds = [];
  try {
    sounds = await api.listAll("/library", 2);
  } catch (err) {
    showError(mixesError, err);
  }
  view.append(mixEditor(project, sounds, mixesList), mixes);
  try {
    const all = (await api.listAll("/mixes", 2)).filter((m) => m.project_id === project.project_id);
    if (!all.length) mixes.append(h("p", { class: "muted empty" }, "No mixes yet."));
    for (const mix of all) mixesList.append(mixItem(mix));
  } catch (err) {
    showError(mixesError, err);
  }
}

// ------------------------------------------------------------------------------------------ library

function soundItem(sound, preview) {
  const badge = statusBadge(sound.status);
  const error = h("span", { class: "error" }, sound.error || "");
  const play = h("button", { type: "button", class: "secondary", disabled: sound.status !== "ready" }, "Preview");
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  const duration = h("span", { class: "muted" }, sound.duration_s ? `${sound.duration_s.toFixed(2)} s` : "");
  const item = h(
    "li",
    { class: "sound", dataset: { soundId: sound.sound_id } },
    h(
      "div",
      { class: "grow" },
      h("strong", {}, sound.name),
      " ",
      badge,
      " ",
      duration,
      " ",
      error,
    ),
    h("div", { class: "row" }, play, remove),
  );
  const rowError = errorBox(null);
  item.append(rowError);
  play.addEventListener("click", async () => {
    showError(rowError, null);
    try {
      await preview(sound);
    } catch (err) {
      showError(rowError, err);
    }
  });
  remove.addEventListener("click", async () => {
    showError(rowError, null);
    try {
      await api.call("DELETE", `/library/${sound.sound_id}`);
      item.remove();
    } catch (err) {
      showError(rowError, err);
    }
  });
  if (!["ready", "failed"].includes(sound.status)) {
    onLeave(
      watch("sound", sound.sound_id, (event) => {
        setStatus(badge, event.status);
        play.disabled = event.status !== "ready";
        if (event.status === "failed") error.textContent = event.detail || "failed";
        if (event.status === "ready") {
          api
            .call("GET", `/library/${sound.sound_id}`)
            .then((d) => (duration.textContent = d.duration_s ? `${d.duration_s.toFixed(2)} s` : ""))
            .catch((err) => showError(rowError, err));
        }
      }),
    );
  }
  return item;
}

async function libraryView(view) {
  const error = errorBox("library-error");
  const uploadError = errorBox("sound-upload-error");
  const list = h("ul", { class: "items", id: "sounds" });
  const player = h("audio", { controls: true, id: "preview", "aria-label": "style sound preview", hidden: true });
  const cache = new Map();
  async function preview(sound) {
    if (!cache.has(sound.sound_id)) {
      cache.set(sound.sound_id, objectUrl(await api.fetchBlob(`${api.API}/library/${sound.sound_id}/audio`)));
    }
    player.hidden = false;
    player.src = cache.get(sound.sound_id);
    await player.play();
  }
  const bar = progressBar(0, "upload progress");
  bar.hidden = true;
  const picker = h("input", { type: "file", id: "sound-files", multiple: true, accept: "audio/*" });
  async function send(files) {
    showError(uploadError, null);
    bar.hidden = false;
    try {
      const ids = await api.uploadStyleSounds(files, (f) => (bar.value = Math.round(f * 100)));
      for (const id of ids) prependItem(list, soundItem(await api.call("GET", `/library/${id}`), preview));
      picker.value = "";
    } catch (err) {
      showError(uploadError, err);
    } finally {
      bar.hidden = true;
    }
  }
  const zone = dropZone(
    "sound-dropzone",
    picker,
    send,
    h("label", { for: "sound-files" }, "Drop style sounds here, or choose files (short hits, notes, textures):"),
  );
  const section = h(
    "section",
    { class: "card", "aria-labelledby": "library-title" },
    h("h2", { id: "library-title" }, "Style sounds"),
    zone,
    bar,
    uploadError,
    player,
    error,
    list,
  );
  view.replaceChildren(section);
  try {
    const sounds = await api.listAll("/library", 2);
    if (!sounds.length) section.append(h("p", { class: "muted empty" }, "No style sounds yet."));
    for (const sound of sounds) list.append(soundItem(sound, preview));
  } catch (err) {
    showError(error, err);
  }
}

// ------------------------------------------------------------------------------------------ routing

async function route() {
  leaveView();
  if (!api.getKey()) {
    showKeyView();
    return;
  }
  document.getElementById("key-view").hidden = true;
  document.getElementById("nav").hidden = false;
  const view = document.getElementById("view");
  const hash = location.hash || "#/";
  const project = /^#\/project\/([^/]+)$/.exec(hash);
  try {
    if (project) await projectView(view, decodeURIComponent(project[1]));
    else if (hash === "#/library") await libraryView(view);
    else await projectsView(view);
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) {
      api.setKey("");
      showKeyView(err.message);
      return;
    }
    view.replaceChildren(errorBox("view-error"));
    showError(view.firstChild, err);
  }
}

document.getElementById("key-form").addEventListener("submit", onKeySubmit);
document.getElementById("sign-out").addEventListener("click", () => {
  api.setKey("");
  route();
});
window.addEventListener("hashchange", route);
route();
