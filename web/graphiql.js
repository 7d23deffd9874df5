// GraphiQL 1 from vendored files (no CDN). When the web app at / has signed
// someone in on this browser, their credentials are offered as the
// Authorization header, so queries run as them; edit the header pane to
// change that.
(function () {
  "use strict";
  function storedAuthorization() {
    try {
      var stored = JSON.parse(localStorage.getItem("tidings.credentials") || "null");
      if (stored && typeof stored.id === "string" && typeof stored.secretkey === "string") {
        return "Basic " + btoa(stored.id + ":" + stored.secretkey);
      }
    } catch (err) {
      console.warn("ignoring stored credentials", err);
    }
    return null;
  }

  function fetcher(params, options) {
    var headers = Object.assign({ "content-type": "application/json" }, (options && options.headers) || {});
    return fetch("/graphql", { method: "POST", headers: headers, body: JSON.stringify(params) })
      .then(function (response) { return response.json(); });
  }

  var authorization = storedAuthorization();
  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      headerEditorEnabled: true,
      shouldPersistHeaders: false,
      headers: authorization ? JSON.stringify({ Authorization: authorization }, null, 2) : undefined,
      defaultQuery: "# Sign in at / (or set an Authorization header below), then:\n{\n  me { id username }\n  chatrooms { id name direct }\n}\n",
    }),
    document.getElementById("graphiql")
  );
})();
