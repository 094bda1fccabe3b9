// Admins' forms, loaded for an admin's session alone (a read or operator page has neither
// this script nor the forms; the API refuses their writes anyway): create, rename and
// delete factories, machines and sensors; a sensor's thresholds; its rules, their deadband
// and delay. Every form says how it went beside itself: "Saved", or the API's words beside
// the field they name (a 422 names each bad field) or beside the form. Deleting asks first.
"use strict";

(function () {
  const ui = window.edgeConsole;
  const { api, el, fmtNum, itemId } = ui;

  // -- feedback ---------------------------------------------------------------------------

  function clearErrors(form) {
    for (const node of form.querySelectorAll(".field-error")) node.remove();
    for (const field of form.querySelectorAll("[aria-invalid]")) {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("aria-describedby");
    }
    say(form, "", false);
  }

  function say(form, text, isError) {
    let out = form.querySelector(":scope > .feedback");
    if (!out) {
      out = el("output", { class: "feedback", "aria-live": "polite" });
      form.append(out);
    }
    out.textContent = text;
    out.classList.toggle("error", isError);
    out.classList.toggle("ok", Boolean(text) && !isError);
  }

  // The API's complaint: each detail beside the field it names (field or param), the rest
  // beside the form, each said once (a 409's detail repeats its message).
  function showError(form, err) {
    const left = [];
    let told = false; // the message itself is beside a field
    for (const d of err.details || []) {
      const name = d.field || d.param;
      const field = name ? form.elements.namedItem(name) : null;
      if (field && field.after) {
        const id = `${form.id || "form"}-${name}-error`;
        field.setAttribute("aria-invalid", "true");
        field.setAttribute("aria-describedby", id);
        field.after(el("span", { class: "field-error", id, "data-error-for": name }, d.message));
        told = told || d.message === err.message;
      } else if (d.message !== err.message) {
        left.push(d.message);
      }
    }
    say(form, [told ? "Not saved" : err.message, ...left].join(": "), true);
  }

  // Submit ``form`` by ``send()`` (an api() call); then ``done(answer)``. Saved or the error
  // is said beside the form.
  function handle(form, send, done) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      let answer;
      try {
        answer = await send(form.elements);
      } catch (err) {
        if (err.status !== 401) showError(form, err);
        return;
      }
      delete form.dataset.dirty;
      say(form, "Saved", false);
      if (done) await done(answer);
    });
  }

  // A delete button that asks first: its first click shows "Delete X? [Delete] [Cancel]".
  function deleteButton(label, question, action, where) {
    const box = el("span", { class: "delete" });
    const start = el("button", { type: "button", class: "danger", "data-action": "delete" }, label);
    box.append(start);
    start.addEventListener("click", () => {
      const yes = el("button", { type: "button", class: "danger", "data-action": "confirm-delete" }, "Delete");
      const no = el("button", { type: "button", "data-action": "cancel-delete" }, "Cancel");
      const ask = el("span", { class: "confirm", role: "alertdialog" }, question(), " ", yes, " ", no);
      no.addEventListener("click", () => ask.replaceWith(start));
      yes.addEventListener("click", async () => {
        try {
          await action();
        } catch (err) {
          if (err.status !== 401) showError(where, err);
          ask.replaceWith(start);
        }
      });
      start.replaceWith(ask);
      yes.focus();
    });
    return box;
  }

  const text = (v) => v.value.trim();
  const optional = (v) => (v.value.trim() === "" ? null : v.value.trim());
  const number = (v) => (v.value === "" ? null : Number(v.value));
  const reload = () => (ui.reload || ui.refresh)();

  // An edit form filled from the item the page shows, unless an admin is typing in it.
  function fill(form, item, names) {
    if (form.contains(document.activeElement) || form.dataset.dirty) return;
    for (const name of names) form.elements[name].value = item[name] ?? "";
  }
  // Typed in since it was last saved: a refresh leaves it alone (a refused value stays in
  // view beside its error).
  function watchDirty(form) {
    form.addEventListener("input", () => { form.dataset.dirty = "1"; });
  }

  function editItem(formId, path, names, parent) {
    const form = document.getElementById(formId);
    if (!form) return;
    let item = null;
    watchDirty(form);
    document.addEventListener("edge:item", (event) => {
      item = event.detail;
      fill(form, item, names);
    });
    handle(form, (f) => {
      const change = {};
      for (const name of names) change[name] = f[name].tagName === "SELECT" ? f[name].value : optional(f[name]);
      return api("PATCH", path, change);
    }, (answer) => {
      item = answer.data; // what the delete question names from now on
      return reload();
    });
    form.querySelector(".actions").append(" ", deleteButton(`Delete ${form.dataset.what}`,
      () => `Delete ${form.dataset.what} ${item ? item.name : ""} for good?`,
      async () => {
        // No poll asks for it while it goes, nor after (they would be 404s): the page
        // leaves for its parent.
        await ui.pause();
        try {
          await api("DELETE", path);
        } catch (err) {
          ui.resume();
          throw err;
        }
        ui.leave();
        window.location.assign(parent(item));
      }, form));
  }

  function createForm(formId, body, done) {
    const form = document.getElementById(formId);
    if (!form) return;
    handle(form, (f) => api("POST", form.dataset.path, body(f)), async (answer) => {
      form.reset();
      await reload();
      if (done) done(form, answer.data);
    });
  }

  // -- pages ------------------------------------------------------------------------------

  function linkTo(form, href, label) {
    const out = form.querySelector(".feedback");
    out.append(": ", el("a", { href }, label));
  }

  function factories() {
    createForm("new-factory", (f) => ({ name: text(f.name), location: optional(f.location) }),
      (form, made) => linkTo(form, `/factories/${made.id}`, made.name));
  }

  function factory() {
    editItem("edit-factory", `/factories/${itemId}`, ["name", "location"], () => "/factories");
    createForm("new-machine", (f) => ({
      factory_id: Number(itemId), line: text(f.line), name: text(f.name), type: optional(f.type),
      status: f.status.value,
    }), (form, made) => linkTo(form, `/machines/${made.id}`, made.name));
  }

  function machine() {
    editItem("edit-machine", `/machines/${itemId}`, ["line", "name", "type", "status"],
      (m) => (m ? `/factories/${m.factory_id}` : "/factories"));
    createForm("new-sensor", (f) => ({
      machine_id: Number(itemId), name: text(f.name), unit: optional(f.unit),
      min_threshold: number(f.min_threshold), max_threshold: number(f.max_threshold),
    }), (form, made) => linkTo(form, `/sensors/${made.id}`, made.key || made.name));
  }

  function sensor() {
    editItem("edit-sensor", `/sensors/${itemId}`, ["name", "unit"],
      (s) => (s ? `/machines/${s.machine_id}` : "/factories"));
    const tform = document.getElementById("thresholds-form");
    watchDirty(tform);
    document.addEventListener("edge:item", (event) => {
      const t = event.detail.thresholds;
      fill(tform, { min: t.min, max: t.max }, ["min", "max"]);
    });
    handle(tform, (f) => api("PUT", `/sensors/${itemId}/thresholds`,
      { min: number(f.min), max: number(f.max) }), reload);
    const rform = document.getElementById("rule-form");
    handle(rform, (f) => {
      const rule = {
        condition: f.condition.value, threshold: number(f.threshold), severity: f.severity.value,
        enabled: true, deadband: number(f.deadband) ?? 0, delay_s: number(f.delay_s) ?? 0,
      };
      if (f.threshold_high.value !== "") rule.threshold_high = number(f.threshold_high);
      return api("POST", `/sensors/${itemId}/rules`, rule);
    }, async () => {
      rform.reset();
      await reload();
    });
  }

  // A rule's own controls in its row: edit its limits, deadband and delay; enable or
  // disable; delete. The row is left alone by the refresh while its editor is open.
  const saved = new Set(); // rules just saved: their redrawn row says so
  ui.ruleControls = function ruleControls(r, rules) {
    const td = el("td", { class: "actions" });
    const f = el("form", { class: "inline rule-edit", id: `rule-${r.id}-form` },
      el("label", {}, "threshold ", el("input", { name: "threshold", type: "number", step: "any", value: r.threshold })),
      r.condition === "OUT_OF_RANGE"
        ? el("label", {}, "high ", el("input", { name: "threshold_high", type: "number", step: "any", value: r.threshold_high }))
        : null,
      el("label", {}, "deadband ", el("input", { name: "deadband", type: "number", step: "any", value: r.deadband })),
      el("label", {}, "delay (s) ", el("input", { name: "delay_s", type: "number", step: "any", value: r.delay_s })),
      el("button", { type: "submit" }, "Save rule"));
    const editor = el("details", { "data-edit-rule": r.id }, el("summary", {}, "Edit"), f);
    handle(f, (e) => {
      const change = { threshold: number(e.threshold), deadband: number(e.deadband), delay_s: number(e.delay_s) };
      if (e.threshold_high) change.threshold_high = number(e.threshold_high);
      return api("PATCH", `/rules/${r.id}`, change);
    }, async () => {
      saved.add(r.id);
      f.reset(); // back to what the row was drawn with: the refresh may redraw it now
      editor.open = false;
      // Out of the row, so that the refresh redraws it with the new values.
      document.activeElement.blur();
      await rules();
    });
    const toggle = el("button", { type: "button", "data-action": "toggle" }, r.enabled ? "Disable" : "Enable");
    toggle.addEventListener("click", async () => {
      try {
        await api("PATCH", `/rules/${r.id}`, { enabled: !r.enabled });
        toggle.blur();
        await rules();
      } catch (err) {
        if (err.status !== 401) showError(f, err);
      }
    });
    const del = deleteButton("Delete", () => `Delete rule ${r.id} (${r.condition} ${fmtNum(r.threshold)})?`,
      async () => {
        await api("DELETE", `/rules/${r.id}`);
        await rules();
      }, f);
    td.append(editor, " ", toggle, " ", del);
    if (saved.delete(r.id)) td.append(" ", el("output", { class: "feedback ok" }, "Saved"));
    return td;
  };

  const admin = { factories, factory, machine, sensor };
  // After the page's own script has started (DOMContentLoaded, as console.js runs it).
  document.addEventListener("DOMContentLoaded", () => {
    const run = admin[document.body.dataset.page];
    if (run) run();
  });
})();
