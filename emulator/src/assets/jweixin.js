/* The emulator's stand-in for jweixin-1.2.0.js: the same wx API, but signatures are checked by
 * the emulator that served this file and the context comes from its state. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src).origin : "";
  var readyFns = [], errorFns = [];
  var configState = null, configResult = null; // null pending, "ok", "fail"
  var agentConfigured = false;

  function post(path, body) {
    return fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }
  function call(fn, arg) {
    if (typeof fn !== "function") return;
    try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); }
  }
  // WeCom signs the page URL up to, not including, the fragment.
  function pageUrl() { return location.href.split("#")[0]; }
  function ok(r, kind) { return r && r.errMsg === kind + ":ok"; }

  var wx = {
    config: function (c) {
      c = c || {};
      configState = null;
      post("/_emulator/jssdk/verify", {
        kind: "config", appId: c.appId, timestamp: c.timestamp, nonceStr: c.nonceStr,
        signature: c.signature, url: pageUrl()
      }).then(function (r) {
        configResult = r;
        if (ok(r, "config")) {
          configState = "ok";
          readyFns.splice(0).forEach(function (f) { call(f); });
        } else {
          configState = "fail";
          errorFns.forEach(function (f) { call(f, r); });
        }
      }, function (e) {
        configState = "fail";
        configResult = { errMsg: "config:fail " + e };
        errorFns.forEach(function (f) { call(f, configResult); });
      });
    },
    ready: function (f) { if (configState === "ok") call(f); else readyFns.push(f); },
    error: function (f) { errorFns.push(f); if (configState === "fail") call(f, configResult); },
    // Since WeCom 3.0.24 agentConfig works without a prior config.
    agentConfig: function (c) {
      c = c || {};
      post("/_emulator/jssdk/verify", {
        kind: "agentConfig", corpid: c.corpid, agentid: c.agentid, timestamp: c.timestamp,
        nonceStr: c.nonceStr, signature: c.signature, url: pageUrl()
      }).then(function (r) {
        if (ok(r, "agentConfig")) { agentConfigured = true; call(c.success, r); }
        else { call(c.fail, r); }
        call(c.complete, r);
      }, function (e) {
        var r = { errMsg: "agentConfig:fail " + e };
        call(c.fail, r); call(c.complete, r);
      });
    },
    checkJsApi: function (c) {
      var res = {};
      ((c && c.jsApiList) || []).forEach(function (n) { res[n] = n === "getContext" || n === "getCurExternalContact"; });
      call(c && c.success, { errMsg: "checkJsApi:ok", checkResult: res });
    },
    invoke: function (name, args, cb) {
      if (typeof args === "function") { cb = args; }
      if (!agentConfigured) { call(cb, { err_msg: name + ":fail no permission" }); return; }
      fetch(base + "/_emulator/state").then(function (r) { return r.json(); }).then(function (s) {
        if (name === "getContext") {
          call(cb, { err_msg: "getContext:ok", entry: s.entry });
        } else if (name === "getCurExternalContact") {
          var chat = s.entry === "single_chat_tools" || s.entry === "contact_profile";
          if (chat && s.current_contact) {
            call(cb, { err_msg: "getCurExternalContact:ok", userId: s.current_contact.external_userid });
          } else {
            call(cb, { err_msg: "getCurExternalContact:fail not in a contact entry (entry " + s.entry + ")" });
          }
        } else {
          call(cb, { err_msg: name + ":fail not supported by the emulator" });
        }
      }, function (e) { call(cb, { err_msg: name + ":fail " + e }); });
    }
  };
  window.wx = window.jWeixin = wx;
})();
