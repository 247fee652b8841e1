// The ipywidgets modules find their fonts relative to their require.js module
// paths; without this they resolve under each page's folder and 404.
(function () {
  var vendor = document.documentElement.dataset.content_root + "_static/vendor";
  require.config({paths: {"@jupyter-widgets/html-manager/dist": vendor, "@jupyter-widgets": vendor}});
})();
