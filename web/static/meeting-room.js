// The meeting room: texts are saved as they are typed (about a second after the last key, and when the
// field is left). Unsent text is kept in this browser (localStorage) until the server has it, so a dropped
// connection or a closed laptop loses nothing; saves are retried until the network is back. Each save
// names the version it started from: when someone else saved first, both texts are shown side by side and
// nothing is overwritten until the person at the keyboard chooses. Each save also sends the text the page
// last saw (base_text): texts sharing a version (a decision's rationale and dissent) are each checked
// against their own text, so one never moves the other's base on. Kept text belongs to the person signed in
// (the key names them) and is cleared when they sign out (init.js).

const room = document.getElementById("room");
if (room) {
  const meetingId = room.dataset.meeting;
  const personId = room.dataset.person;
  const csrf = room.dataset.csrf;
  const statusBox = document.getElementById("room-save-status");
  const DEBOUNCE_MS = 1000;
  const RETRY_MS = 3000;
  const storeKey = (key) => `caseconf-room:${personId}:${meetingId}:${key}`;
  const groups = new Map(); // version group -> latest version known
  const fields = new Map(); // key -> field state
  let offline = false;
  let retryTimer = null;
  let lastSaved = null;

  const store = {
    get(key) {
      try {
        return JSON.parse(window.localStorage.getItem(storeKey(key)) || "null");
      } catch (error) {
        return null;
      }
    },
    set(key, value) {
      try {
        window.localStorage.setItem(storeKey(key), JSON.stringify(value));
      } catch (error) {
        // Storage full or blocked: the text is still in the page and will be sent.
      }
    },
    remove(key) {
      try {
        window.localStorage.removeItem(storeKey(key));
      } catch (error) {
        // Nothing to do.
      }
    },
  };

  function setGroupVersion(group, version) {
    groups.set(group, version);
    document.querySelectorAll(`input[name="base_version"][data-group="${CSS.escape(group)}"]`).forEach((input) => {
      input.value = String(version);
    });
  }

  function waiting() {
    let count = 0;
    fields.forEach((field) => {
      if (field.pending || field.conflict) count += 1;
    });
    return count;
  }

  function showStatus() {
    const count = waiting();
    const changes = `${count} ${count === 1 ? "change" : "changes"}`;
    let text;
    if (offline) {
      text = `Offline — ${changes} waiting. Keep typing: they are kept in this browser and sent when the connection is back.`;
    } else if (count && [...fields.values()].some((f) => f.conflict)) {
      text = "Not saved: someone else changed a text you were editing. Choose which to keep below.";
    } else if (count) {
      text = `Saving ${changes}…`;
    } else if (lastSaved) {
      text = `Saved at ${lastSaved}`;
    } else if (fields.size) {
      text = "Changes are saved as you type.";
    } else {
      text = "";
    }
    if (statusBox.textContent.trim() !== text) statusBox.textContent = text;
    room.classList.toggle("app-room--offline", offline);
  }

  function scheduleRetry() {
    if (retryTimer) return;
    retryTimer = window.setTimeout(() => {
      retryTimer = null;
      fields.forEach((field) => {
        if (field.pending && !field.conflict) send(field);
      });
    }, RETRY_MS);
  }

  function remember(field) {
    field.pending = true;
    store.set(field.key, {
      text: field.textarea.value,
      base: field.base,
      baseText: field.baseText,
      url: field.url,
      sharing: sharingOf(field),
    });
  }

  // Who may see an agency's contribution: the choice beside its text, sent with it.
  function sharingOf(field) {
    const form = field.textarea.form;
    const select = form && form.querySelector('select[name="visibility"]');
    if (!select) return null;
    // Ticked agencies, and those named already that are not invited to this meeting (kept as they were).
    const named = form.querySelectorAll('input[name="visible_to_agencies"]:checked, input[type="hidden"][name="visible_to_agencies"]');
    const codes = [...named].map((box) => box.value);
    return { visibility: select.value, codes };
  }

  async function send(field) {
    if (field.inFlight) {
      field.again = true;
      return;
    }
    if (field.conflict) return;
    window.clearTimeout(field.timer);
    const text = field.textarea.value;
    const base = field.base;
    const body = new URLSearchParams({ csrf_token: csrf, text, base_version: String(base) });
    if (typeof field.baseText === "string") body.append("base_text", field.baseText);
    const sharing = sharingOf(field);
    if (sharing) {
      body.append("visibility", sharing.visibility);
      sharing.codes.forEach((code) => body.append("visible_to_agencies", code));
    }
    field.inFlight = true;
    showStatus();
    let response;
    try {
      response = await fetch(field.url, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-Autosave": "1", Accept: "application/json" },
      });
    } catch (error) {
      field.inFlight = false;
      offline = true;
      showStatus();
      scheduleRetry();
      return;
    }
    field.inFlight = false;
    offline = false;
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (response.ok && !response.redirected && typeof data.version === "number") {
      field.base = data.version;
      field.baseText = text;
      // The form beside it now starts from this text; the other texts of its group keep their own base
      // (moving theirs on without their text would let a stale page overwrite them).
      setGroupVersion(field.group, data.version);
      document.querySelectorAll(`input[data-base-of="${CSS.escape(field.key)}"]`).forEach((input) => {
        input.value = text;
      });
      lastSaved = data.saved_at;
      if (field.textarea.value === text) {
        field.pending = false;
        store.remove(field.key);
      } else {
        remember(field);
        field.again = true;
      }
    } else if (response.status === 409 && "theirs" in data) {
      showConflict(field, data);
    } else {
      // Refused (signed out, not allowed, or not valid): keep the text here and say so.
      field.error =
        (data.errors && data.errors.join("; ")) ||
        (response.redirected || response.status === 403
          ? "you may have been signed out (sign in again in another tab, then type a letter here)"
          : `the server answered ${response.status}`);
      statusBox.textContent = `Not saved: ${field.error}. Your text is kept in this browser.`;
      return;
    }
    showStatus();
    if (field.again) {
      field.again = false;
      send(field);
    }
    // One answer means the network is back: send whatever else is waiting.
    fields.forEach((other) => {
      if (other !== field && other.pending && !other.inFlight && !other.conflict) send(other);
    });
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showConflict(field, data) {
    field.conflict = data;
    clearConflict(field, false);
    const box = element("div", { class: "app-room-conflict", role: "group", "aria-labelledby": `${field.key}-conflict-title` });
    box.appendChild(
      element("h4", { class: "govuk-heading-s", id: `${field.key}-conflict-title` }, "Someone else saved this text while you were typing"),
    );
    box.appendChild(element("p", { class: "govuk-body" }, "Nothing has been overwritten. Choose which to keep, or join the two."));
    const columns = element("div", { class: "app-room-conflict__columns" });
    const mine = element("div", { class: "app-room-conflict__column" });
    mine.appendChild(element("h5", { class: "govuk-heading-s" }, "Your text"));
    mine.appendChild(element("div", { class: "app-pre", "data-conflict": "yours" }, data.yours));
    const theirs = element("div", { class: "app-room-conflict__column" });
    theirs.appendChild(element("h5", { class: "govuk-heading-s" }, "Saved by someone else"));
    theirs.appendChild(element("div", { class: "app-pre", "data-conflict": "theirs" }, data.theirs));
    columns.append(mine, theirs);
    box.appendChild(columns);
    const buttons = element("div", { class: "govuk-button-group" });
    const keepMine = element("button", { type: "button", class: "govuk-button" }, "Keep mine");
    const keepTheirs = element("button", { type: "button", class: "govuk-button govuk-button--secondary" }, "Keep theirs");
    const merge = element("button", { type: "button", class: "govuk-button govuk-button--secondary" }, "Edit a merge");
    keepMine.addEventListener("click", () => {
      field.textarea.value = data.yours;
      resolve(field, data.version, data.theirs);
      send(field);
    });
    keepTheirs.addEventListener("click", () => {
      field.textarea.value = data.theirs;
      resolve(field, data.version, data.theirs);
      field.pending = false;
      store.remove(field.key);
      showStatus();
    });
    merge.addEventListener("click", () => {
      field.textarea.value = `${data.theirs}\n\n${data.yours}`;
      resolve(field, data.version, data.theirs);
      remember(field);
      field.textarea.focus();
      showStatus();
    });
    buttons.append(keepMine, keepTheirs, merge);
    box.appendChild(buttons);
    field.container.appendChild(box);
    field.conflictBox = box;
    showStatus();
  }

  function clearConflict(field, focus) {
    if (field.conflictBox) {
      field.conflictBox.remove();
      field.conflictBox = null;
      if (focus) field.textarea.focus();
    }
  }

  function resolve(field, version, theirs) {
    field.conflict = null;
    field.base = version;
    field.baseText = theirs; // the text now stored: what the person at the keyboard has now seen
    clearConflict(field, true);
    remember(field);
    field.pending = field.textarea.value !== theirs;
  }

  // Text kept in this browser that can no longer be sent (the minutes were approved meanwhile): shown for
  // copying, never silently dropped.
  function showStranded(textarea, kept) {
    const key = textarea.dataset.key;
    const container = textarea.closest(".app-room-autosave") || textarea.parentElement;
    const box = element("div", { class: "app-room-conflict", role: "group", "aria-labelledby": `${key}-stranded-title` });
    box.appendChild(
      element("h4", { class: "govuk-heading-s", id: `${key}-stranded-title` }, "Text typed here that was never saved"),
    );
    box.appendChild(
      element(
        "p",
        { class: "govuk-body" },
        "It was kept in this browser, but this text can no longer be changed here. Copy it if you still need it.",
      ),
    );
    const copy = element("textarea", {
      class: "govuk-textarea",
      rows: "4",
      readonly: "",
      "data-stranded": key,
      "aria-labelledby": `${key}-stranded-title`,
    });
    copy.value = kept.text;
    box.appendChild(copy);
    const forget = element("button", { type: "button", class: "govuk-button govuk-button--secondary" }, "I have copied it: forget it");
    forget.addEventListener("click", () => {
      store.remove(key);
      box.remove();
    });
    box.appendChild(forget);
    container.appendChild(box);
  }

  function setUp(textarea) {
    if (textarea.readOnly) {
      const kept = store.get(textarea.dataset.key);
      if (kept && typeof kept.text === "string") {
        if (kept.text !== textarea.value) showStranded(textarea, kept);
        else store.remove(textarea.dataset.key);
      }
      return;
    }
    const field = {
      key: textarea.dataset.key,
      url: textarea.dataset.autosaveUrl,
      group: textarea.dataset.group,
      base: Number(textarea.dataset.version),
      baseText: textarea.dataset.baseText,
      textarea,
      container: textarea.closest(".app-room-autosave") || textarea.parentElement,
      pending: false,
      inFlight: false,
      timer: null,
    };
    fields.set(field.key, field);
    if (!groups.has(field.group)) groups.set(field.group, field.base);
    // Text typed here before a reload or a crash, never confirmed by the server: put it back and send it.
    const kept = store.get(field.key);
    if (kept && typeof kept.text === "string") {
      if (kept.text !== textarea.value) {
        textarea.value = kept.text;
        field.base = Number(kept.base);
        if (typeof kept.baseText === "string") field.baseText = kept.baseText;
        field.pending = true;
      } else {
        store.remove(field.key);
      }
    }
    textarea.addEventListener("input", () => {
      remember(field);
      window.clearTimeout(field.timer);
      field.timer = window.setTimeout(() => send(field), DEBOUNCE_MS);
      showStatus();
    });
    textarea.addEventListener("keydown", (event) => {
      // Ctrl+Enter (or Cmd+Enter) saves now, without waiting for the pause in typing.
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        remember(field);
        send(field);
      }
    });
    textarea.addEventListener("blur", () => {
      if (field.pending) send(field);
    });
    // Choosing who may see a contribution saves it at once.
    document.querySelectorAll(`[data-sharing-of="${CSS.escape(field.key)}"]`).forEach((input) => {
      input.addEventListener("change", () => {
        remember(field);
        send(field);
      });
    });
  }

  document.querySelectorAll("textarea[data-autosave-url]").forEach(setUp);

  // A plain save button sends at once instead of reloading the page.
  document.querySelectorAll("form[data-autosave-form]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      const textarea = form.querySelector("textarea[data-autosave-url]");
      const field = textarea && fields.get(textarea.dataset.key);
      if (!field) return;
      event.preventDefault();
      remember(field);
      send(field);
    });
    form.querySelectorAll(".app-room-save").forEach((button) => button.classList.add("app-room-save--quiet"));
  });

  window.addEventListener("online", () => {
    offline = false;
    fields.forEach((field) => {
      if (field.pending && !field.conflict) send(field);
    });
  });
  window.addEventListener("offline", () => {
    offline = true;
    showStatus();
  });

  showStatus();
  fields.forEach((field) => {
    if (field.pending) send(field);
  });
}
