import { initAll } from "/static/govuk/govuk-frontend.min.js";

initAll();

// Signing out forgets the meeting room's unsent text kept in this browser (meeting-room.js), so the next
// person to use this browser never sees it.
document.querySelectorAll('form[action="/sign-out"]').forEach((form) => {
  form.addEventListener("submit", () => {
    try {
      const keys = [];
      for (let index = 0; index < window.localStorage.length; index += 1) {
        const key = window.localStorage.key(index);
        if (key && key.startsWith("caseconf-room:")) keys.push(key);
      }
      keys.forEach((key) => window.localStorage.removeItem(key));
    } catch (error) {
      // Storage blocked: nothing was kept.
    }
  });
});
