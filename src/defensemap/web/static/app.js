// defensemap: search-as-you-type, tabs and copy buttons. No framework, no inline script
// (the Content-Security-Policy forbids it). Works on the server and on the static site.
"use strict";

(function () {
  const base = document.querySelector('link[rel="stylesheet"]').getAttribute("href").replace(/\/static\/style\.css$/, "");

  function text(tag, value, className) {
    const node = document.createElement(tag);
    node.textContent = value;
    if (className) node.className = className;
    return node;
  }

  async function fetchResults(query) {
    const url = base + "/api/v1/search?limit=12&q=" + encodeURIComponent(query);
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) return (await response.json()).data.results;
    } catch (error) { /* static site: fall back to the prebuilt index */ }
    return window.defensemapStaticSearch ? window.defensemapStaticSearch(query) : [];
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

  function setupSearch(input) {
    const list = input.parentElement.querySelector("ul.instant");
    let timer = null;
    let latest = "";
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(async function () {
        const query = input.value.trim();
        latest = query;
        if (!query) { list.hidden = true; return; }
        const results = await fetchResults(query);
        if (query !== latest) return;
        list.replaceChildren();
        for (const result of results) {
          const item = document.createElement("li");
          const link = document.createElement("a");
          link.href = resultUrl(result);
          link.append(text("strong", result.id || ""), document.createTextNode(" " + (result.name || "")), text("span", result.kind, "kind"));
          item.append(link);
          list.append(item);
        }
        list.hidden = results.length === 0;
      }, 120);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" && !list.hidden) {
        const first = list.querySelector("a");
        if (first) { event.preventDefault(); first.focus(); }
      }
      if (event.key === "Escape") list.hidden = true;
    });
    list.addEventListener("keydown", function (event) {
      const links = Array.from(list.querySelectorAll("a"));
      const index = links.indexOf(document.activeElement);
      if (event.key === "ArrowDown" && index < links.length - 1) { event.preventDefault(); links[index + 1].focus(); }
      if (event.key === "ArrowUp") { event.preventDefault(); (index > 0 ? links[index - 1] : input).focus(); }
      if (event.key === "Escape") { list.hidden = true; input.focus(); }
    });
  }

  function setupTabs(container) {
    const tabs = Array.from(container.querySelectorAll('[role="tab"]'));
    function select(tab) {
      for (const other of tabs) {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        other.tabIndex = selected ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      }
    }
    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { select(tab); });
      tab.addEventListener("keydown", function (event) {
        const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (step) { event.preventDefault(); const next = tabs[(index + step + tabs.length) % tabs.length]; select(next); next.focus(); }
      });
    });
  }

  function setupCopy(button) {
    button.addEventListener("click", async function () {
      const source = document.getElementById(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Select and copy";
      }
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  }

  document.querySelectorAll("[data-instant-search]").forEach(setupSearch);
  document.querySelectorAll(".tabs").forEach(setupTabs);
  document.querySelectorAll("button[data-copy]").forEach(setupCopy);
})();
