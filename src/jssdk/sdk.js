/* wecom-gateway front-end helper, served at {prefix}/sdk.js.
 *
 *   WeComGateway.ready()  -> Promise<{userId, externalUserId, unionId, name, entry}>
 *   WeComGateway.fetch(input, init) -> window.fetch with the verified contact's ticket
 *
 * ready() loads the JS-SDK, gets signatures from the gateway for this page's URL (without its
 * #fragment), runs wx.config (for clients that need it) and wx.agentConfig, asks WeCom where the
 * page was opened from (getContext) and, from a chat, who the customer is
 * (getCurExternalContact), then has the gateway verify that customer. Every failure rejects with
 * {code, message}: code names the step ("load", "config", "agentConfig", "getContext",
 * "getCurExternalContact", "verify", "session"), message carries WeCom's err_msg.
 * A payload refused with "invalid signature" is reported to the gateway and tried once more:
 * WeCom may drop a ticket before it expires.
 *
 * The contact ticket lives two hours: fetch() renews it (the gateway verifies the same customer
 * again) when less than RENEW_BEFORE is left, and once more, retrying the request once, when the
 * gateway answers 403 external_contact_required (the ticket was refused: expired, or another
 * member signed in on this device). A page never falls back to some other customer: without a
 * verified customer (not opened from a chat, or its verification failed) fetch() sends
 * "WGW-Contact: none", so the gateway does not send the one the session verified last (in
 * another tab, or another chat).
 */
(function () {
  "use strict";
  var SETTINGS = __WGW_SETTINGS__; // {prefix, app, jssdkUrls}
  var CHAT_ENTRIES = ["single_chat_tools", "contact_profile"];
  var JS_API_LIST = ["getContext", "getCurExternalContact"];
  var RENEW_BEFORE = 10 * 60 * 1000;
  var contactTicket = null; // {ticket, externalUserId, expiresAt}
  var renewing = null;
  var pending = null;
  var configured = null; // {url, done}

  function fail(code, message) {
    var e = new Error(code + ": " + message);
    e.code = code;
    e.message = message;
    return e;
  }

  function loadScript(urls) {
    return new Promise(function (resolve, reject) {
      if (window.wx && window.wx.agentConfig) return resolve();
      var i = 0;
      (function next() {
        if (i >= urls.length) return reject(fail("load", "could not load the JS-SDK from " + urls.join(", ")));
        var s = document.createElement("script");
        try {
          /* A page that requires Trusted Types refuses a plain string here: said as a failed load. */
          s.src = urls[i++];
        } catch (e) {
          return reject(fail("load", "the page's policy refused the JS-SDK script (" + e.message + ")"));
        }
        s.onload = function () { window.wx ? resolve() : next(); };
        s.onerror = next;
        document.head.appendChild(s);
      })();
    });
  }

  /* `code` names the step a failed call belongs to; 401 always means the session is gone. */
  function api(path, init, code) {
    init = init || {};
    init.credentials = "same-origin";
    init.headers = Object.assign({ Accept: "application/json" }, init.headers || {});
    return window.fetch(SETTINGS.prefix + path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var why = body.error || ("HTTP " + r.status);
          if (body.message) why += " (" + body.message + ")";
          throw fail(r.status === 401 ? "session" : code, why);
        }
        return body;
      });
    }, function (e) { throw fail(code, "network error: " + e); });
  }

  /* A WeCom callback that never comes must not leave the page waiting forever. */
  function withTimeout(promise, code) {
    return new Promise(function (resolve, reject) {
      var t = setTimeout(function () { reject(fail(code, code + ": no answer from the JS-SDK")); }, 20000);
      promise.then(function (v) { clearTimeout(t); resolve(v); },
                   function (e) { clearTimeout(t); reject(e); });
    });
  }

  /* WeCom before 3.0.24 needs wx.config to succeed before wx.agentConfig; newer clients take
   * agentConfig alone. A browser that is not WeCom (the emulator, a desktop test) gets both. */
  function needsConfigFirst() {
    var m = /wxwork\/(\d+)\.(\d+)\.(\d+)/i.exec(navigator.userAgent);
    if (!m) return true;
    var v = [+m[1], +m[2], +m[3]], min = [3, 0, 24];
    for (var i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i] < min[i];
    return false;
  }

  /* The rejection remembers what was refused: a page can report it as stale (below). */
  function refused(code, res, payload) {
    var e = fail(code, (res && (res.errMsg || res.err_msg)) || code + ":fail");
    e.stale = [code, payload.timestamp, payload.nonceStr, payload.signature].join(".");
    return e;
  }

  function wxConfig(c) {
    return withTimeout(new Promise(function (resolve, reject) {
      wx.config({ beta: true, debug: false, appId: c.appId, timestamp: c.timestamp,
                  nonceStr: c.nonceStr, signature: c.signature, jsApiList: JS_API_LIST });
      wx.ready(resolve);
      wx.error(function (res) { reject(refused("config", res, c)); });
    }), "config");
  }

  function wxAgentConfig(c) {
    return withTimeout(new Promise(function (resolve, reject) {
      wx.agentConfig({ corpid: c.corpid, agentid: c.agentid, timestamp: c.timestamp,
                       nonceStr: c.nonceStr, signature: c.signature, jsApiList: JS_API_LIST,
                       success: resolve,
                       fail: function (res) { reject(refused("agentConfig", res, c)); } });
    }), "agentConfig");
  }

  function invoke(name) {
    return withTimeout(new Promise(function (resolve, reject) {
      wx.invoke(name, {}, function (res) {
        if (res && res.err_msg === name + ":ok") resolve(res);
        else reject(fail(name, (res && res.err_msg) || name + ":fail"));
      });
    }), name);
  }

  function appQuery(sep) {
    return SETTINGS.app ? sep + "app=" + encodeURIComponent(SETTINGS.app) : "";
  }

  /* Signatures for this page, then the injections. `stale` lists payloads WeCom refused:
   * WeCom can drop a ticket early, and only the page sees it; the gateway then replaces a
   * ticket if the refused payload was signed with the one it holds. */
  function configure(stale) {
    var url = location.href.split("#")[0];
    var path = "/jssdk/config?url=" + encodeURIComponent(url) + appQuery("&") +
      stale.map(function (s) { return "&stale=" + encodeURIComponent(s); }).join("");
    return api(path, null, "config").then(function (cfg) {
      var first = needsConfigFirst() && cfg.config ? wxConfig(cfg.config) : Promise.resolve();
      return first.then(function () { return cfg.agentConfig && wxAgentConfig(cfg.agentConfig); });
    });
  }

  /* One more try per payload kind after "invalid signature"; a second refusal is the answer. */
  function configureRetrying(stale) {
    return configure(stale).catch(function (e) {
      var again = e.stale && /invalid signature/.test(e.message) &&
        !stale.some(function (s) { return s.split(".")[0] === e.code; });
      if (!again) throw e;
      return configureRetrying(stale.concat([e.stale]));
    });
  }

  /* The JS-SDK is loaded once and configured once per page URL (a single-page app that moved
   * to another URL is signed again); a failure is tried afresh by the next ready(). */
  function configureOnce() {
    var url = location.href.split("#")[0];
    if (!configured || configured.url !== url) {
      var p = loadScript(SETTINGS.jssdkUrls).then(function () { return configureRetrying([]); });
      configured = { url: url, done: p };
      p.catch(function () { if (configured && configured.done === p) configured = null; });
    }
    return configured.done;
  }

  /* Each call asks WeCom again where the page is and who the customer is: the chat may have
   * changed since. Calls made while one is under way share it. Outside a chat, or when the
   * customer cannot be verified, the page has no customer: fetch() sends "none" rather than
   * the customer of an earlier chat. */
  function ready() {
    if (pending) return pending;
    var result = { userId: null, externalUserId: null, unionId: null, name: null, entry: null };
    var p = api("/whoami" + appQuery("?"), null, "session")
      .then(function (me) { result.userId = me.userid || null; })
      .then(configureOnce)
      .then(function () { return invoke("getContext"); })
      .then(function (ctx) {
        result.entry = ctx.entry || null;
        if (CHAT_ENTRIES.indexOf(result.entry) < 0) {
          contactTicket = null;
          return result;
        }
        return invoke("getCurExternalContact").then(function (res) {
          return verify(res.userId, false);
        }).then(function (c) {
          remember(c);
          result.externalUserId = c.external_userid;
          result.unionId = c.unionid || null;
          result.name = c.name || null;
          return result;
        }, function (e) {
          contactTicket = null;
          throw e;
        });
      });
    pending = p;
    var done = function () { if (pending === p) pending = null; };
    p.then(done, done);
    return p;
  }

  /* A renewal asks only for a new ticket of this page's customer: the session's current
   * contact (what requests without a ticket get) stays whatever another page verified last. */
  function verify(externalUserId, renewal) {
    var body = { external_userid: externalUserId };
    if (renewal) body.renew = true;
    return api("/external-contact" + appQuery("?"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }, "verify");
  }

  function remember(c) {
    contactTicket = {
      ticket: c.ticket,
      externalUserId: c.external_userid,
      expiresAt: Date.now() + (c.expires_in || 7200) * 1000
    };
  }

  /* One renewal at a time, for the customer this page is about. A failed renewal leaves the
   * old ticket: the gateway then refuses it, and the page is told. */
  function renew() {
    if (!contactTicket) return Promise.resolve();
    if (!renewing) {
      var asked = contactTicket.externalUserId;
      renewing = verify(asked, true).then(function (c) {
        /* ready() may have moved the page to another customer meanwhile. */
        if (contactTicket && contactTicket.externalUserId === asked) remember(c);
      }, function () {})
        .then(function () { renewing = null; });
    }
    return renewing;
  }

  /* The ticket is for this site's CRM only: another origin (an analytics host, a CDN) never gets
   * it. A relative URL is read as fetch() reads it, against the document's base. */
  function sameOrigin(input) {
    try {
      return new URL(input instanceof Request ? input.url : String(input), document.baseURI).origin === location.origin;
    } catch (e) {
      return false;
    }
  }

  function send(input, init, ticket) {
    if (!sameOrigin(input)) return window.fetch(input, init);
    init = Object.assign({}, init || {});
    var headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
    headers.set("WGW-Contact", ticket || "none");
    init.headers = headers;
    var method = String(init.method || (input instanceof Request ? input.method : "GET")).toUpperCase();
    var mode = init.redirect || (input instanceof Request ? input.redirect : "follow");
    if (!ticket || mode !== "follow" || (method !== "GET" && method !== "HEAD")) {
      return window.fetch(input, init);
    }
    /* A redirect keeps the request's headers wherever it leads (a file in a storage bucket):
     * a ticketed GET is not followed with the ticket. Redirected, it is asked again saying
     * "none", and followed as usual: without the header, the gateway would give the request
     * the session's current customer, which another page may have changed. */
    return window.fetch(input, Object.assign({}, init, { redirect: "manual" })).then(function (r) {
      if (r.type !== "opaqueredirect") return r;
      var plain = new Headers(headers);
      plain.set("WGW-Contact", "none");
      return window.fetch(input, Object.assign({}, init, { headers: plain, redirect: "follow" }));
    });
  }

  /* The ticket of `about` (the customer a request was made for), if the page is still about
   * that customer: a call made for one customer never leaves with another's ticket, whatever
   * ready() moved the page to meanwhile. */
  function ticketFor(about) {
    return about && contactTicket && contactTicket.externalUserId === about ? contactTicket.ticket : null;
  }

  /* Was the ticket refused? Only a 403 whose body says so; the body stays readable. */
  function contactRefused(r) {
    if (r.status !== 403) return Promise.resolve(false);
    return r.clone().json().then(function (b) {
      return b && b.error === "external_contact_required";
    }, function () { return false; });
  }

  function gatewayFetch(input, init) {
    var replayable = !(input instanceof Request) || !input.body;
    var about = contactTicket ? contactTicket.externalUserId : null;
    var first = contactTicket && contactTicket.expiresAt - Date.now() < RENEW_BEFORE
      ? renew() : Promise.resolve();
    var sent = null;
    return first.then(function () {
      sent = ticketFor(about);
      return send(input, init, sent);
    }).then(function (r) {
      if (!sent || !replayable) return r;
      return contactRefused(r).then(function (refused) {
        if (!refused) return r;
        return renew().then(function () {
          var again = ticketFor(about);
          return again && again !== sent ? send(input, init, again) : r;
        });
      });
    });
  }

  window.WeComGateway = { ready: ready, fetch: gatewayFetch };
})();
