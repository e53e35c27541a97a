// journal-mail serve: new mail on an open list, from /api/events (server-sent events).
// Every value is put in with textContent: a mail's text is never markup here either.
(function () {
  "use strict";
  var table = document.getElementById("mails");
  if (!table || !table.dataset.live || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var state = document.getElementById("live");
  var events = new EventSource("/api/events" + window.location.search);
  function cell(tr, text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
    return td;
  }
  events.addEventListener("mail", function (ev) {
    var r = JSON.parse(ev.data);
    var tr = document.createElement("tr");
    tr.className = "new";
    cell(tr, r.local_time).className = "time";
    cell(tr, r.hostname || "");
    cell(tr, r.username || (r.uid === null ? "" : r.uid));
    cell(tr, r.caller_comm || "");
    cell(tr, r.unit || "");
    cell(tr, r.from || r.envelope_from || "");
    cell(tr, r.to || (r.recipients || []).join(", "));
    cell(tr, r.size_text).className = "num";
    cell(tr, r.subject || "(no subject)", "/mail/" + encodeURIComponent(r.mail_id)).className = "subject";
    body.insertBefore(tr, body.firstChild);
    var empty = document.getElementById("empty");
    if (empty) { empty.remove(); }
  });
  events.onopen = function () { if (state) { state.textContent = "live"; state.className = "live"; } };
  events.onerror = function () { if (state) { state.textContent = "reconnecting"; state.className = "live off"; } };
}());
