// The meeting room: texts are saved as they are typed (about a second after the last key, and when the
// field is left). Unsent text is kept in this browser (localStorage) until the server has it, so a dropped
// connection or a closed laptop loses nothing; saves are retried until the network is back. Each save
// names the version it started from: when someone else saved first, both texts are shown side by side and
// nothing is overwritten until the person at the keyboard chooses.

const room = document.getElementById("room");
if (room) {
  const meetingId = room.dataset.meeting;
  const csrf = room.dataset.csrf;
  const statusBox = document.getElementById("room-save-status");
  const DEBOUNCE_MS = 1000;
  const RETRY_MS = 3000;
  const storeKey = (key) => `caseconf-room:${meetingId}:${key}`;
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
    } else {
      text = "Changes are saved as you type.";
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
    store.set(field.key, { text: field.textarea.value, base: field.base, url: field.url });
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
      setGroupVersion(field.group, data.version);
      fields.forEach((other) => {
        if (other !== field && other.group === field.group && !other.inFlight) other.base = data.version;
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
      resolve(field, data.version);
      send(field);
    });
    keepTheirs.addEventListener("click", () => {
      field.textarea.value = data.theirs;
      resolve(field, data.version);
      field.pending = false;
      store.remove(field.key);
      showStatus();
    });
    merge.addEventListener("click", () => {
      field.textarea.value = `${data.theirs}\n\n${data.yours}`;
      resolve(field, data.version);
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

  function resolve(field, version) {
    field.conflict = null;
    field.base = version;
    setGroupVersion(field.group, version);
    clearConflict(field, true);
    store.set(field.key, { text: field.textarea.value, base: field.base, url: field.url });
  }

  function setUp(textarea) {
    if (textarea.readOnly) return;
    const field = {
      key: textarea.dataset.key,
      url: textarea.dataset.autosaveUrl,
      group: textarea.dataset.group,
      base: Number(textarea.dataset.version),
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
