// Passkeys on idp's pages: the one script, a static file under the CSP (script-src 'self').
//
// A form marked data-passkey="create" or "get" holds, server-rendered: the WebAuthn options as
// a non-executable JSON block (<script type="application/json">, named by data-options), a
// hidden input "credential", a button data-passkey-start (hidden until this script shows it)
// and an element data-passkey-error. The script runs the ceremony, puts the browser's
// PublicKeyCredential JSON into "credential" and submits the form: the server checks
// everything, and it fetches nothing. A "get" form marked data-conditional also offers the
// passkeys in the email field's autofill (conditional mediation) where the browser can.
"use strict";

(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return; // no WebAuthn here: the buttons stay hidden, the password form works as ever
  }

  function fromB64url(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: fromB64url(item.id) });
    });
  }

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: fromB64url(json.challenge),
      user: Object.assign({}, json.user, { id: fromB64url(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: fromB64url(json.challenge),
      allowCredentials: withIds(json.allowCredentials),
    });
  }

  function asJSON(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toB64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toB64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64url(response.authenticatorData);
      out.response.signature = toB64url(response.signature);
      if (response.userHandle) out.response.userHandle = toB64url(response.userHandle);
    }
    return out;
  }

  function setUp(form) {
    var mode = form.getAttribute("data-passkey");
    var block = document.getElementById(form.getAttribute("data-options"));
    var start = form.querySelector("[data-passkey-start]");
    var field = form.querySelector("input[name=credential]");
    var error = form.querySelector("[data-passkey-error]");
    if (!block || !start || !field) return;
    var json = JSON.parse(block.textContent);
    var waiting = null; // the conditional request, aborted when the button is used
    var clicked = false; // the button's request, if it came first, is the only one made

    function finish(credential) {
      if (!credential) return;
      field.value = JSON.stringify(asJSON(credential));
      form.submit();
    }

    function failed(problem) {
      if (problem && problem.name === "AbortError") return;
      if (error) {
        error.textContent =
          problem && problem.name === "InvalidStateError"
            ? "This passkey is already registered here."
            : "No passkey was used. Try again, or use another way.";
        error.hidden = false;
      }
    }

    start.hidden = false;
    start.addEventListener("click", function (event) {
      event.preventDefault();
      clicked = true;
      if (waiting) waiting.abort();
      if (error) error.hidden = true;
      var ceremony =
        mode === "create"
          ? navigator.credentials.create({ publicKey: creationOptions(json) })
          : navigator.credentials.get({ publicKey: requestOptions(json) });
      ceremony.then(finish, failed);
    });

    if (mode === "get" && form.hasAttribute("data-conditional") &&
        PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available || clicked) return;
        waiting = new AbortController();
        navigator.credentials
          .get({ mediation: "conditional", publicKey: requestOptions(json), signal: waiting.signal })
          .then(finish, failed);
      });
    }
  }

  document.querySelectorAll("form[data-passkey]").forEach(setUp);
})();
