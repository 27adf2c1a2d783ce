// Draw a new box on the best frame: drag on it, the box form's x1 y1 x2 y2 follow (in image pixels).
(function () {
  "use strict";
  function setup() {
    var svg = document.querySelector("svg.frame.best");
    var rect = document.getElementById("box-rect");
    var form = document.getElementById("box-form");
    if (!svg || !rect || !form) { return; }
    var start = null;
    function point(ev) {
      var p = svg.createSVGPoint();
      p.x = ev.clientX; p.y = ev.clientY;
      var q = p.matrixTransform(svg.getScreenCTM().inverse());
      var vb = svg.viewBox.baseVal;
      return { x: Math.max(0, Math.min(vb.width, q.x)), y: Math.max(0, Math.min(vb.height, q.y)) };
    }
    function show(a, b) {
      var x1 = Math.min(a.x, b.x), y1 = Math.min(a.y, b.y), x2 = Math.max(a.x, b.x), y2 = Math.max(a.y, b.y);
      rect.setAttribute("x", x1); rect.setAttribute("y", y1);
      rect.setAttribute("width", x2 - x1); rect.setAttribute("height", y2 - y1);
      var vals = { x1: x1, y1: y1, x2: x2, y2: y2 };
      Object.keys(vals).forEach(function (k) {
        document.getElementById("box-" + k).value = vals[k].toFixed(1);
      });
    }
    svg.addEventListener("mousedown", function (ev) { start = point(ev); ev.preventDefault(); });
    svg.addEventListener("mousemove", function (ev) { if (start) { show(start, point(ev)); } });
    window.addEventListener("mouseup", function (ev) {
      if (start) { var end = point(ev); if (Math.abs(end.x - start.x) > 1 && Math.abs(end.y - start.y) > 1) { show(start, end); } start = null; }
    });
    ["x1", "y1", "x2", "y2"].forEach(function (k) {
      document.getElementById("box-" + k).addEventListener("input", function () {
        var v = function (n) { return parseFloat(document.getElementById("box-" + n).value); };
        if ([v("x1"), v("y1"), v("x2"), v("y2")].every(isFinite) && v("x2") > v("x1") && v("y2") > v("y1")) {
          rect.setAttribute("x", v("x1")); rect.setAttribute("y", v("y1"));
          rect.setAttribute("width", v("x2") - v("x1")); rect.setAttribute("height", v("y2") - v("y1"));
        }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", setup);
})();
