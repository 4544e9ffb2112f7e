// defensemap static site: search over the prebuilt index (static/search-index.json) where
// there is no /api/v1/search. Loaded only by pages of `defensemap build-site`. app.js calls
// window.defensemapStaticSearch(query) when the API does not answer; on /search/?q=… the
// results table is filled in here. Text only (textContent), never HTML.
"use strict";

(function () {
  const base = document.querySelector('link[rel="stylesheet"]').getAttribute("href").replace(/\/static\/style\.css$/, "");
  const KIND_ORDER = ["technique", "group", "software", "campaign", "capability", "detection", "mitigation", "tactic", "sigma-rule"];
  let index = null;

  function loadIndex() {
    if (!index) {
      index = fetch(base + "/static/search-index.json")
        .then(function (response) { return response.ok ? response.json() : { entries: [] }; })
        .then(function (data) {
          return data.entries.map(function (entry) {
            return { entry: entry, id: (entry.id || "").toLowerCase(), name: (entry.name || "").toLowerCase() };
          });
        });
    }
    return index;
  }

  // Lower is better: exact id, id prefix, name prefix, a word of the name, then substrings.
  function rank(item, query, words) {
    if (item.id === query) return 0;
    if (item.id.startsWith(query)) return 1;
    if (item.name === query) return 2;
    if (item.name.startsWith(query)) return 3;
    if (item.name.split(/[\s\-_/(),.:]+/).some(function (word) { return word.startsWith(query); })) return 4;
    const text = item.id + " " + item.name;
    if (words.every(function (word) { return text.includes(word); })) return 5;
    return -1;
  }

  function kindOrder(kind) {
    const position = KIND_ORDER.indexOf(kind);
    return position < 0 ? KIND_ORDER.length : position;
  }

  async function search(query, limit) {
    const wanted = query.trim().toLowerCase();
    if (!wanted) return [];
    const words = wanted.split(/\s+/);
    const found = [];
    for (const item of await loadIndex()) {
      const score = rank(item, wanted, words);
      if (score >= 0) found.push({ score: score, item: item });
    }
    found.sort(function (a, b) {
      return a.score - b.score || kindOrder(a.item.entry.kind) - kindOrder(b.item.entry.kind) ||
        (a.item.id < b.item.id ? -1 : a.item.id > b.item.id ? 1 : 0);
    });
    return found.slice(0, limit || 12).map(function (hit) {
      return Object.assign({ match: hit.score <= 1 ? "id" : hit.score <= 4 ? "name" : "text" }, hit.item.entry);
    });
  }

  function resultUrl(result) {
    const kinds = {
      technique: "techniques", group: "groups", software: "software", campaign: "campaigns",
      mitigation: "mitigations", tactic: "tactics", "data-component": "data-components",
      "detection-strategy": "detection-strategies", "sigma-rule": "detections", detection: "detections",
    };
    if (result.kind === "capability" && result.framework) {
      return base + "/capabilities/" + encodeURIComponent(result.framework) + "/" + encodeURIComponent(result.id);
    }
    return base + "/" + (kinds[result.kind] || result.kind) + "/" + encodeURIComponent(result.id);
  }

  function cell(tag, value) {
    const node = document.createElement(tag);
    node.textContent = value;
    return node;
  }

  // The static /search/ page was rendered without a query: show the results for ?q= here.
  async function fillSearchPage() {
    if (!/\/search\/?(index\.html)?$/.test(window.location.pathname)) return;
    const query = new URLSearchParams(window.location.search).get("q") || "";
    const main = document.getElementById("main");
    if (!query.trim() || !main) return;
    const input = document.getElementById("q");
    if (input && !input.value) input.value = query;
    const results = await search(query, 50);
    const heading = main.querySelector("h1");
    if (heading) heading.textContent = "Search: “" + query + "”";
    if (!results.length) { main.append(cell("p", "Nothing matches.")); return; }
    const table = document.createElement("table");
    const head = document.createElement("tr");
    for (const title of ["ID", "Name", "Kind", "Match"]) {
      const th = cell("th", title);
      th.scope = "col";
      head.append(th);
    }
    const body = document.createElement("tbody");
    for (const result of results) {
      const row = document.createElement("tr");
      const link = cell("a", result.id);
      link.href = resultUrl(result);
      const first = document.createElement("td");
      first.append(link);
      row.append(first, cell("td", result.name || ""), cell("td", result.kind), cell("td", result.match));
      body.append(row);
    }
    table.append(document.createElement("thead"), body);
    table.tHead.append(head);
    main.append(table);
  }

  window.defensemapStaticSearch = function (query) { return search(query, 12); };
  fillSearchPage();
})();
