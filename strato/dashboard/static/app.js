// strato dashboard: progressive enhancement only; every page works as plain HTML forms.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Selects marked data-autosubmit (status filter, project switcher) submit their form
  // when an option is picked with the pointer. From the keyboard, arrow keys change a
  // closed select's value at every press: nothing happens until the form's button.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    var pointer = false;
    select.addEventListener("pointerdown", function () { pointer = true; });
    select.addEventListener("keydown", function () { pointer = false; });
    select.addEventListener("change", function () { if (pointer) { select.form.submit(); } });
  });

  function fetchText(url) {
    return fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("session"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      });
  }

  // Live instance rows: the rows whose status is still changing are fetched again
  // every two seconds and swapped in place (no full page reload).
  var table = document.querySelector("table[data-live-url]");
  if (table) {
    var pollRows = function () {
      var live = table.querySelectorAll("tbody tr[data-live]");
      if (!live.length) { setTimeout(pollRows, 2000); return; }
      var ids = Array.prototype.map.call(live, function (tr) { return tr.dataset.id; });
      var url = table.dataset.liveUrl + "?" + ids.map(function (id) {
        return "id=" + encodeURIComponent(id); }).join("&");
      fetchText(url).then(function (html) {
        var tbody = document.createElement("tbody");
        tbody.innerHTML = html;
        var fresh = {};
        tbody.querySelectorAll("tr[data-id]").forEach(function (tr) { fresh[tr.dataset.id] = tr; });
        live.forEach(function (tr) {
          var next = fresh[tr.dataset.id];
          if (next) { tr.replaceWith(next); } else { tr.remove(); }
        });
      }).catch(function () {}).then(function () { setTimeout(pollRows, 2000); });
    };
    setTimeout(pollRows, 2000);
  }

  // The detail page: status, fault and timeline refresh while the build runs.
  var liveBox = document.querySelector("#live[data-live-url]");
  if (liveBox) {
    var pollDetail = function () {
      fetchText(liveBox.dataset.liveUrl).then(function (html) {
        liveBox.innerHTML = html;
        var status = liveBox.querySelector("#server-status");
        var running = liveBox.querySelector(".result-running");
        var busy = status && /BUILD|REBOOT|DELETED/.test(status.textContent);
        if (busy || running) { setTimeout(pollDetail, 1500); }
      }).catch(function () { setTimeout(pollDetail, 3000); });
    };
    setTimeout(pollDetail, 1500);
  }

  // Image upload: create the record, then stream the file with a progress bar.
  var upload = document.querySelector("form[data-upload]");
  if (upload) {
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = upload.querySelector('input[type="file"]').files[0];
      var box = upload.querySelector(".progress");
      var bar = upload.querySelector("progress");
      var status = upload.querySelector('[role="status"]');
      if (!file) { status.textContent = "Choose a file."; box.hidden = false; return; }
      box.hidden = false;
      status.textContent = "Registering the image…";
      var fields = new URLSearchParams(new FormData(upload));
      fields.delete("file");
      fetch(upload.action, { method: "POST", body: fields, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, "X-Requested-With": "fetch" } })
        .then(function (r) { return r.json().then(function (b) { return [r, b]; }); })
        .then(function (answer) {
          if (!answer[0].ok) { throw new Error(answer[1].error || "refused"); }
          var xhr = new XMLHttpRequest();
          xhr.open("PUT", upload.action + "/" + encodeURIComponent(answer[1].id) + "/file");
          xhr.setRequestHeader("X-CSRF-Token", csrf);
          xhr.setRequestHeader("X-Requested-With", "fetch");
          xhr.setRequestHeader("Content-Type", "application/octet-stream");
          xhr.upload.onprogress = function (e) {
            if (e.lengthComputable) {
              bar.value = Math.round(e.loaded * 100 / e.total);
              status.textContent = "Uploading… " + bar.value + "%";
            }
          };
          xhr.onload = function () {
            if (xhr.status >= 200 && xhr.status < 300) {
              bar.value = 100;
              status.textContent = "Uploaded " + file.name + ".";
              upload.reset();
              // The list as the API now shows it, swapped in without a reload.
              fetchText(window.location.href).then(function (html) {
                var fresh = new DOMParser().parseFromString(html, "text/html")
                  .querySelector("#image-list");
                var list = document.querySelector("#image-list");
                if (fresh && list) { list.replaceWith(fresh); }
              }).catch(function () { window.location.reload(); });
            } else {
              var message = "refused";
              try { message = JSON.parse(xhr.responseText).error; } catch (e) {}
              status.textContent = "Upload failed: " + message;
            }
          };
          xhr.onerror = function () { status.textContent = "Upload failed: the connection broke."; };
          xhr.send(file);
        })
        .catch(function (e) { status.textContent = "Upload failed: " + e.message; });
    });
  }
})();
