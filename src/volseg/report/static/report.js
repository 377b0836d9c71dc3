// volseg report: sortable tables and the NiiVue viewer (NiiVue itself is inlined before this).
"use strict";

function sortTable(th) {
  const table = th.closest("table");
  const index = Array.prototype.indexOf.call(th.parentNode.children, th);
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const key = (row) => {
    const cell = row.children[index];
    const value = cell.getAttribute("data-value");
    if (value === null) return cell.textContent;
    const number = Number(value);  // "NaN" sorts last either way
    return Number.isNaN(number) ? (ascending ? Infinity : -Infinity) : number;
  };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const ka = key(a), kb = key(b);
    const order = typeof ka === "number" && typeof kb === "number" ? ka - kb : String(ka).localeCompare(String(kb));
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}

document.querySelectorAll("table.sortable th").forEach((th) => th.addEventListener("click", () => sortTable(th)));

(function viewer() {
  const holder = document.getElementById("volseg-data");
  const canvas = document.getElementById("viewer");
  if (!holder || !canvas) return;
  const data = JSON.parse(holder.textContent);
  const status = document.getElementById("viewer-status");
  Object.entries(data.labels || {}).forEach(([role, name]) => {
    document.getElementById("name-" + role).textContent = name;
  });
  if (typeof window.niivue === "undefined") {
    status.textContent = "The interactive viewer is not part of this file (NiiVue was not found when it was written).";
    document.body.dataset.viewer = "absent";
    return;
  }
  const nv = new window.niivue.Niivue({
    backColor: [0, 0, 0, 1],
    show3Dcrosshair: true,
    crosshairColor: [0.2, 0.6, 1, 1],  // blue: red and green are the labels
    crosshairWidth: 0.5,
    isColorbar: false,
    logLevel: "error",
    multiplanarShowRender: window.niivue.SHOW_RENDER.ALWAYS,
  });
  const controls = {
    prediction: document.getElementById("show-prediction"),
    reference: document.getElementById("show-reference"),
    opacity: document.getElementById("opacity"),
    layout: document.getElementById("layout"),
  };
  let roles = [];  // role of each loaded volume: "image", "prediction", "reference"
  window.volseg = { nv: nv, roles: () => roles.slice(), show: show };

  function applyOpacity() {
    const alpha = Number(controls.opacity.value) / 100;
    roles.forEach((role, i) => {
      if (role === "image") return;
      nv.setOpacity(i, controls[role].checked ? alpha : 0);
    });
  }

  async function show(name) {
    const item = data.cases[name];
    document.body.dataset.viewer = "loading";
    status.textContent = "loading " + name + " ...";
    while (nv.volumes.length) nv.removeVolume(nv.volumes[nv.volumes.length - 1]);
    roles = [];
    const layers = [["image", "gray"], ["prediction", "red"], ["reference", "green"]];
    for (const [role, colormap] of layers) {
      if (!item[role]) continue;
      const volume = await window.niivue.NVImage.loadFromBase64({
        base64: item[role], name: name + "_" + role + ".nii.gz", colormap: colormap, opacity: 1,
      });
      if (role !== "image") {
        volume.cal_min = 0.5;
        volume.cal_max = Math.max(1, volume.global_max || 1);
      }
      nv.addVolume(volume);
      roles.push(role);
    }
    applyOpacity();
    nv.updateGLVolume();
    document.getElementById("viewer-case").textContent = name + (item.note ? " (" + item.note + ")" : "");
    status.textContent = "";
    document.body.dataset.viewer = "ready";
    document.body.dataset.viewerCase = name;
  }

  ["prediction", "reference"].forEach((role) => controls[role].addEventListener("change", applyOpacity));
  controls.opacity.addEventListener("input", applyOpacity);
  controls.layout.addEventListener("change", () => nv.setSliceType(Number(controls.layout.value)));
  document.querySelectorAll("button.view").forEach((button) =>
    button.addEventListener("click", () => {
      show(button.dataset.case);
      document.getElementById("viewer-section").scrollIntoView();
    }));
  nv.attachToCanvas(canvas).then(() => {
    nv.setSliceType(Number(controls.layout.value));
    if (data.order.length) return show(data.order[0]);
    status.textContent = "no case has volumes to show";
    document.body.dataset.viewer = "empty";
  }).catch((err) => {
    status.textContent = "viewer failed: " + err;
    document.body.dataset.viewer = "failed";
    console.error(err);
  });
})();
