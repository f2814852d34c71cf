// The Mini App. Every request carries Telegram's initData in a header, which the server checks
// (signature and age); the pages come rendered and escaped by the server. Writes are JSON
// posts with that header: no cookie, so nothing another site could make the browser send.
"use strict";
(function () {
  var app = window.Telegram && window.Telegram.WebApp;
  var box = document.getElementById("cabinet");
  var api = box.dataset.endpoint;
  function show(id, text) {
    var element = document.getElementById(id);
    box.hidden = true;
    if (text) element.textContent = text;
    element.hidden = false;
  }
  if (!app || !app.initData) { show("unauthorized"); return; }
  app.ready();
  app.expand();

  var shown = new Error("already shown");  // a refusal on screen: no "could not load" over it
  function failed(error) { if (error !== shown) show("failed"); }
  function call(path, body) {
    var options = { headers: { "X-Telegram-Init-Data": app.initData } };
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(api + path, options).then(function (response) {
      if (response.status === 401) { show("unauthorized"); throw shown; }
      if (response.status === 403 && (response.headers.get("Content-Type") || "").indexOf("json") >= 0) {
        return response.json().then(function (answer) {  // refused by the IP allow-list
          show("refused", answer.message);
          throw shown;
        });
      }
      return response;
    });
  }
  function page(response) {  // the cabinet, or a refused form shown back with its errors
    if (!response.ok && response.status !== 422) { show("failed"); return; }
    return response.text().then(function (html) {
      box.innerHTML = html;
      var invalid = box.querySelector("[aria-invalid]");
      if (invalid) invalid.focus(); else window.scrollTo(0, 0);
    });
  }
  function load() { return call("/cabinet").then(page).catch(failed); }

  box.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-form]");
    if (!form) return;
    event.preventDefault();
    var values = {};
    new FormData(form).forEach(function (value, name) { values[name] = value; });
    call("/forms/" + form.dataset.form, values).then(page).catch(failed);
  });
  box.addEventListener("click", function (event) {
    var pay = event.target.closest("button[data-pay]");
    if (pay) {
      pay.disabled = true;
      call("/pay", { invoice: Number(pay.dataset.pay), method: pay.dataset.method })
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          pay.disabled = false;
          if (answer.url) app.openInvoice(answer.url, function (status) { if (status === "paid") load(); });
          else if (answer.error) app.showAlert(answer.error);
        })
        .catch(function () { pay.disabled = false; });
      return;
    }
    var link = event.target.closest("a[href]");
    if (!link) return;
    event.preventDefault();
    if (link.hasAttribute("data-telegram")) app.openTelegramLink(link.href);
    else app.openLink(link.href);
  });
  load();
})();
