// Classes GOV.UK Frontend's CSS expects when JavaScript runs (kept external for a strict CSP).
document.body.className += " js-enabled" + ("noModule" in HTMLScriptElement.prototype ? " govuk-frontend-supported" : "");
