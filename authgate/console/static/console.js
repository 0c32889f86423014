// Copy buttons: <button data-copy="ID"> copies the text of the element with that id.
// External file, so the Content-Security-Policy needs no inline script.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) { return; }
  var source = document.getElementById(button.getAttribute("data-copy"));
  var status = button.parentElement.querySelector(".copied");
  if (!source || !navigator.clipboard) {
    if (status) { status.textContent = "Select the text and copy it"; }
    return;
  }
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    if (status) { status.textContent = "Copied"; }
  }, function () {
    if (status) { status.textContent = "Select the text and copy it"; }
  });
});
// After htmx swaps in new content, move focus to it so keyboard users land on the result.
document.addEventListener("htmx:afterSwap", function (event) {
  if (event.detail.target && event.detail.target.id === "chain") { event.detail.target.focus(); }
});
