// Progressive enhancement only: pages read fine without it.
// Tell the server the viewer's timezone, so times and "today" are local to the viewer.
(function () {
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = null; }
  if (!zone) { return; }
  var current = document.cookie.match(/(?:^|;\s*)tz=([^;]*)/);
  if (current && decodeURIComponent(current[1]) === zone) { return; }
  document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
  // A page that shows times (or is drawn around "today") was rendered in another zone, UTC on
  // a first visit: draw it again once, in the viewer's own.
  var rendered = document.body && document.body.getAttribute("data-viewer-zone");
  if (rendered && rendered !== zone && document.querySelector("time, [data-zone-sensitive]")) {
    window.location.reload();
  }
})();
