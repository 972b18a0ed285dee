// excap station page, self-contained parts: "Start anyway" after a start refused because required devices are not
// ready, and "Last episodes" with Success / Failure label buttons. station.js announces each action's result with
// an `excap-action` event on the document.
"use strict";

(function () {
  const byId = (id) => document.getElementById(id);
  const RECENT_MS = 5000;

  function showStartAnyway(data) {
    const refused = Boolean(data && data.code === "devices_not_ready");
    byId("start-anyway").classList.toggle("hidden", !refused);
    byId("start-anyway-reason").textContent = refused ? data.message : "";
  }

  // through station.js's `action()`: it says the result (or that the station is not reachable, never thrown), skips
  // while the connection is lost, and announces it with `excap-action`, which updates the offer and the list below
  const startAnyway = () => action("/api/start", {override: true});
  const labelEpisode = (episodeId, outcome) => action("/api/label", {episode: episodeId, outcome: outcome});

  function labelButton(episode, outcome) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = outcome + (episode.label === outcome ? " chosen" : "");
    button.textContent = outcome === "success" ? "Success" : "Failure";
    button.dataset.episode = episode.episode_id;
    button.addEventListener("click", () => labelEpisode(episode.episode_id, outcome));
    return button;
  }

  // the review video (`excap render EPISODE --out <file>.mp4`, H.264), played in place; streamed with HTTP Range
  function reviewCell(episode) {
    const cell = document.createElement("td");
    if (!episode.review_video || episode.problem) return cell;
    const video = document.createElement("video");
    video.controls = true;
    video.muted = true;
    video.preload = "metadata";
    video.className = "review-video";
    video.dataset.episode = episode.episode_id;
    video.src = `/api/episodes/${encodeURIComponent(episode.episode_id)}/review.mp4`;
    cell.appendChild(video);
    return cell;
  }

  // keep a playing video: the list is refreshed every few seconds
  function sameRows(body, episodes) {
    const shown = Array.from(body.querySelectorAll("tr")).map((row) => row.dataset.key);
    return shown.length === episodes.length && episodes.every((e, i) => shown[i] === rowKey(e));
  }

  function rowKey(episode) {
    return [episode.file, episode.effective_outcome, episode.label, episode.review_video].join("|");
  }

  function episodeRow(episode) {
    const row = document.createElement("tr");
    row.dataset.key = rowKey(episode);
    const started = (episode.started_at || "").replace("T", " ").slice(0, 19);
    const cells = [episode.file, started, `${Number(episode.duration_s || 0).toFixed(0)} s`,
      episode.problem ? "unreadable" : episode.effective_outcome + (episode.label ? " (labelled)" : "")];
    cells.forEach((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    const actions = document.createElement("td");
    if (!episode.problem) ["success", "failure"].forEach((o) => actions.appendChild(labelButton(episode, o)));
    row.appendChild(actions);
    row.appendChild(reviewCell(episode));
    return row;
  }

  async function loadRecentEpisodes() {
    const table = byId("recent-episodes");
    table.dataset.refreshes = String(Number(table.dataset.refreshes || 0) + 1);
    let result;
    try {
      result = await api("GET", "/api/episodes/recent");  // station.js: with the login's CSRF token
    } catch (e) {
      return;  // the list stays as it was until the station answers again
    }
    if (!result.ok) return;
    const body = table.querySelector("tbody");
    if (sameRows(body, result.data.episodes)) return;
    body.replaceChildren(...result.data.episodes.map(episodeRow));
  }

  document.addEventListener("excap-action", (event) => {
    const {path, result} = event.detail;
    if (path === "/api/start") showStartAnyway(result.ok ? null : result.data);
    else loadRecentEpisodes();
  });
  byId("btn-start-anyway").addEventListener("click", startAnyway);
  loadRecentEpisodes();
  setInterval(loadRecentEpisodes, RECENT_MS);
})();
