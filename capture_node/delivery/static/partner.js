// excap partner page: the token is typed in once and kept in sessionStorage only (never in a URL); every API
// request sends it as a bearer header. Review videos play through short-lived signed URLs, asked for per episode.
"use strict";

(function () {
  const KEY = "excap-partner-token";
  const byId = (id) => document.getElementById(id);

  function say(text, error) {
    byId("message").textContent = text;
    byId("message").className = error ? "error" : "";
  }

  async function api(path) {
    const token = sessionStorage.getItem(KEY);
    const response = await fetch(path, {headers: {Authorization: `Bearer ${token}`}, cache: "no-store",
                                        credentials: "omit"});
    if (response.status === 401) throw new Error("the token was not accepted");
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  async function signVideo(video) {
    const signed = await api(`/v1/episodes/${encodeURIComponent(video.dataset.episode)}/review-url`);
    const position = video.currentTime;
    video.src = signed.url;
    if (position > 0) video.currentTime = position;
  }

  function videoCell(row, episode) {
    const td = cell(row, "");
    td.className = "video-cell";
    if (!episode.review_video) {
      td.textContent = episode.review_video_pending ? "being prepared ..." : "not available";
      return;
    }
    const video = document.createElement("video");
    video.className = "review-video";
    video.controls = true;
    video.muted = true;
    video.preload = "metadata";
    video.dataset.episode = episode.episode_id;
    let renewed = 0;
    video.addEventListener("error", () => {  // most likely an expired link: ask for a new one (a few times)
      if (renewed++ < 3) signVideo(video).catch((error) => say(error.message, true));
    });
    video.addEventListener("loadeddata", () => { renewed = 0; });
    td.appendChild(video);
    signVideo(video).catch((error) => say(error.message, true));
  }

  function showDatasets(datasets) {
    const body = byId("datasets").querySelector("tbody");
    body.replaceChildren();
    for (const dataset of datasets) {
      const row = document.createElement("tr");
      cell(row, dataset.name);
      cell(row, dataset.files);
      cell(row, dataset.bytes);
      body.appendChild(row);
    }
  }

  // videos still being made: list again every few seconds and put in those that are ready (others keep playing)
  function refreshPending(episodes) {
    if (!episodes.some((e) => e.review_video_pending)) return;
    setTimeout(async () => {
      try {
        const listed = (await api("/v1/episodes")).episodes;
        for (const episode of listed) {
          const row = byId("episodes").querySelector(`tr[data-pending="1"][data-episode="${CSS.escape(episode.episode_id)}"]`);
          if (!row || episode.review_video_pending) continue;
          row.dataset.pending = "0";
          row.querySelector("td.video-cell").remove();
          videoCell(row, episode);
        }
        refreshPending(listed.filter((e) => byId("episodes").querySelector(
          `tr[data-pending="1"][data-episode="${CSS.escape(e.episode_id)}"]`)));
      } catch (error) {
        say(error.message, true);
      }
    }, 3000);
  }

  function showEpisodes(episodes) {
    const body = byId("episodes").querySelector("tbody");
    body.replaceChildren();
    for (const episode of episodes) {
      const row = document.createElement("tr");
      row.dataset.episode = episode.episode_id;
      row.dataset.pending = episode.review_video_pending ? "1" : "0";
      cell(row, episode.episode_id);
      cell(row, `${episode.machine_kind} ${episode.machine_model}`);
      cell(row, episode.task);
      cell(row, episode.outcome);
      cell(row, `${Number(episode.duration_s).toFixed(1)} s`);
      cell(row, (episode.datasets || []).join(", "));
      videoCell(row, episode);
      body.appendChild(row);
    }
    refreshPending(episodes);
  }

  async function load() {
    say("loading ...", false);
    try {
      const [datasets, episodes] = await Promise.all([api("/v1/datasets"), api("/v1/episodes")]);
      showDatasets(datasets.datasets);
      showEpisodes(episodes.episodes);
      byId("content").classList.remove("hidden");
      byId("login").classList.add("hidden");
      say(`${episodes.episodes.length} episodes`, false);
    } catch (error) {
      say(error.message, true);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    byId("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, byId("token").value.trim());
      byId("token").value = "";
      load();
    });
    byId("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      byId("content").classList.add("hidden");
      byId("login").classList.remove("hidden");
      say("", false);
    });
    if (sessionStorage.getItem(KEY)) load();
  });
})();
