//! Verifying a request: every check AWS makes, in AWS's order, with AWS's messages.
//!
//! In order; the first that fails decides the answer:
//!
//! | check | refusal |
//! |---|---|
//! | neither `Authorization` nor `X-Amz-Algorithm` in the query | 403 `MISSING_AUTHENTICATION_TOKEN` |
//! | a required part missing (`Credential`, `X-Amz-Date`, ...) | 403 `MISSING_AUTHENTICATION_TOKEN`, AWS's message |
//! | a malformed part; the scope's region or service not the settings'; `host` not signed | 403 `INVALID_SIGNATURE` |
//! | no `X-Amz-Date` or `Date` header that parses | 403 `MISSING_AUTHENTICATION_TOKEN` |
//! | the date not signed, or not the scope's day | 403 `INVALID_SIGNATURE` |
//! | signed more than `max_skew` ahead of the clock or behind it; a presigned URL past `X-Amz-Expires` | 403 `EXPIRED_TOKEN` |
//! | `x-amz-content-sha256` not signed; `UNSIGNED-PAYLOAD` not allowed | 403 `INVALID_SIGNATURE` |
//! | an unknown access key id; a session token missing, unexpected or wrong | 403 `UNRECOGNIZED_CLIENT` |
//! | the credential store failing | 503 `BACKEND_UNAVAILABLE` |
//! | the signature | 403 `INVALID_SIGNATURE` |
//! | the body against a declared `x-amz-content-sha256` | 400 `BAD_REQUEST_BODY` |
//!
//! Everything up to the credential lookup is free of secrets and of I/O,
//! so a forged request costs a store lookup at most, and a request refused
//! on its headers is refused before its body is read ([`Verifier::prepare`]
//! then [`Verifier::finish`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use http::{HeaderMap, Uri};
use subtle::ConstantTimeEq;

use super::date::{amz, header_date, parse_amz_date};
use super::{
    CanonicalOptions, CredentialStore, ParseErrorKind, SignatureParams, SigningKey,
    canonical_request, parse_authorization, parse_presigned, sha256_hex, string_to_sign,
};
use crate::clock::Clock;
use crate::response::GatewayResponseKind;
use crate::secret::Secret;

/// The payload hash a client sends to leave the body out of the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Who signed a verified request. The SigV4 layer puts it in the request
/// extensions (for the inner service) and the response extensions (for usage).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigV4Identity {
    /// The access key id that signed.
    pub access_key_id: String,
    /// The principal the credentials belong to.
    pub principal: String,
    /// Whether the credentials may invalidate cache entries.
    pub can_invalidate_cache: bool,
}

/// Why a request is refused: the gateway response and, where AWS gives one,
/// the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The gateway response kind.
    pub kind: GatewayResponseKind,
    /// A message for the body; `None` for the kind's own.
    pub message: Option<String>,
}

impl Refusal {
    /// A refusal with AWS's message for this case.
    fn new(kind: GatewayResponseKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: Some(message.into()),
        }
    }

    /// A refusal with the kind's own message.
    fn plain(kind: GatewayResponseKind) -> Self {
        Self {
            kind,
            message: None,
        }
    }
}

/// A request whose headers passed [`Verifier::prepare`]: what
/// [`Verifier::finish`] needs to check its body.
pub struct Prepared {
    /// What the request says about its signature.
    params: SignatureParams,
    /// The request time as `YYYYMMDDTHHMMSSZ`, the form the string to sign
    /// needs: `X-Amz-Date` as sent, or a `Date` header rewritten.
    amz_date: String,
    /// The signer's credentials, found and their session token matched.
    credential: Arc<super::Credential>,
    /// Which payload hash the signature covers.
    payload: Payload,
}

/// The payload hash the signature covers.
enum Payload {
    /// `x-amz-content-sha256` as sent; the signature is checked.
    Declared(String),
    /// `UNSIGNED-PAYLOAD`, allowed; the signature is checked.
    Unsigned(String),
    /// No header: the body's hash, known once the body is read.
    Body,
}

impl Prepared {
    /// Whether [`Verifier::finish`] needs the body: false for an allowed
    /// `UNSIGNED-PAYLOAD`, whose body can stream on unread.
    pub fn needs_body(&self) -> bool {
        !matches!(self.payload, Payload::Unsigned(_))
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("access_key_id", &self.params.access_key_id)
            .field("needs_body", &self.needs_body())
            .finish_non_exhaustive()
    }
}

/// What the verifier checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierSettings {
    /// The region in the credential scope.
    pub region: String,
    /// The service in the credential scope.
    pub service: String,
    /// Allowed clock skew, seconds.
    pub max_skew: u64,
    /// Whether `x-amz-content-sha256: UNSIGNED-PAYLOAD` is accepted.
    pub unsigned_payload: bool,
    /// How the canonical request is built.
    pub canonical: CanonicalOptions,
    /// Whether a signature mismatch answers with the canonical request and
    /// string to sign, as AWS does. Off by default: it helps a client
    /// developer, and shows anyone what the server computed.
    pub explain_mismatch: bool,
}

impl VerifierSettings {
    /// `region` and `service`, 5 minutes of skew, payloads signed, API Gateway's canonical form.
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            service: service.into(),
            max_skew: 300,
            unsigned_payload: false,
            canonical: CanonicalOptions::default(),
            explain_mismatch: false,
        }
    }
}

/// Verifies SigV4 requests against a [`CredentialStore`], caching derived
/// signing keys per access key and day (so a verification costs two HMACs
/// and two SHA-256s, not six HMACs). Clones share the cache.
#[derive(Clone)]
pub struct Verifier {
    settings: VerifierSettings,
    store: Arc<dyn CredentialStore>,
    /// Decides clock skew and presigned expiry.
    clock: Arc<dyn Clock>,
    /// Derived keys, by a hash of (access key id, scope date). The hash is
    /// only a slot: each entry records what it was derived from, and a hit
    /// is used only when all of it matches.
    keys: Arc<RwLock<HashMap<u64, Arc<CachedKey>>>>,
    /// Seeded at random per verifier, so slots cannot be predicted.
    hasher: foldhash::quality::RandomState,
}

/// Signing keys kept: one per access key and day, so a handful in practice;
/// past this many the map starts afresh.
const MAX_CACHED_KEYS: usize = 10_000;

/// A derived key and what it was derived from.
struct CachedKey {
    access_key_id: String,
    /// The scope's `YYYYMMDD`.
    date: String,
    /// The secret the key was derived from, compared in constant time on
    /// every hit: a rotated secret must not verify with the old key.
    secret: Secret,
    key: SigningKey,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.settings)
            .field("store", &self.store)
            .field("cached_keys", &self.keys.read().map_or(0, |k| k.len()))
            .finish()
    }
}

impl Verifier {
    /// A verifier for `settings`, looking credentials up in `store`.
    pub fn new(
        settings: VerifierSettings,
        store: Arc<dyn CredentialStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            settings,
            store,
            clock,
            keys: Arc::default(),
            hasher: Default::default(),
        }
    }

    /// Verifies a request: `uri` as the client sent it (stage prefix
    /// included), its headers and its whole body.
    ///
    /// The same checks as [`prepare`](Self::prepare) followed by the body's:
    /// a layer that has not read the body yet calls the two halves, so that
    /// a request refused on its headers is refused before its body is read.
    pub async fn verify(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<SigV4Identity, Refusal> {
        let prepared = self.prepare(method, uri, headers).await?;
        self.finish(prepared, method, uri, headers, body)
    }

    /// Every check that needs no body, in AWS's order: the signature's form,
    /// scope, signed headers and date, the clock skew, the payload header's
    /// rules, the credential (an unknown access key id is refused here) and
    /// the session token. When the client declared its payload hash in
    /// `x-amz-content-sha256` (or `UNSIGNED-PAYLOAD`), the signature itself
    /// is checked here too; [`finish`](Self::finish) then only compares the
    /// body with the declared hash.
    pub async fn prepare(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Prepared, Refusal> {
        use GatewayResponseKind::{InvalidSignature, MissingAuthenticationToken};
        let query = uri.query().unwrap_or("");
        let params = match headers.get(http::header::AUTHORIZATION) {
            Some(v) => parse_authorization(v.to_str().unwrap_or("")),
            None => match parse_presigned(query) {
                Ok(Some(p)) => Ok(p),
                Ok(None) => return Err(Refusal::plain(MissingAuthenticationToken)),
                Err(e) => Err(e),
            },
        };
        let params = params.map_err(|e| match e.kind() {
            ParseErrorKind::Incomplete => Refusal::new(MissingAuthenticationToken, e.to_string()),
            _ => Refusal::new(InvalidSignature, e.to_string()),
        })?;
        let s = &self.settings;
        if params.region != s.region {
            return Err(Refusal::new(
                InvalidSignature,
                format!(
                    "Credential should be scoped to a valid region, not '{}'. ",
                    params.region
                ),
            ));
        }
        if params.service != s.service {
            return Err(Refusal::new(
                InvalidSignature,
                format!(
                    "Credential should be scoped to correct service: '{}'. ",
                    s.service
                ),
            ));
        }
        if !params
            .signed_headers
            .iter()
            .any(|h| h == "host" || h == ":authority")
        {
            return Err(Refusal::new(
                InvalidSignature,
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let (amz_date, signed_at) = match &params.presigned {
            Some(p) => match parse_amz_date(&p.amz_date) {
                Some(t) => (Cow::Borrowed(p.amz_date.as_str()), t),
                None => {
                    return Err(Refusal::new(
                        InvalidSignature,
                        "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
                    ));
                }
            },
            None => {
                let Some(found) = header_date(headers) else {
                    return Err(Refusal::new(
                        MissingAuthenticationToken,
                        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                    ));
                };
                let date_signed = params
                    .signed_headers
                    .iter()
                    .any(|h| h == "x-amz-date" || h == "date");
                if !date_signed {
                    return Err(Refusal::new(
                        InvalidSignature,
                        "The 'X-Amz-Date' or 'Date' header must be signed.",
                    ));
                }
                found
            }
        };
        if !amz_date.starts_with(&params.scope_date) {
            return Err(Refusal::new(
                InvalidSignature,
                format!(
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                    params.scope_date,
                    amz_date.get(..8).unwrap_or("")
                ),
            ));
        }
        self.check_time(&params, signed_at)?;
        let payload = self.declared_payload(headers, &params)?;
        let credential = match self.store.get(&params.access_key_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Refusal::plain(GatewayResponseKind::UnrecognizedClient)),
            Err(e) => {
                tracing::warn!(error = %e, "credential store failed");
                return Err(Refusal::plain(GatewayResponseKind::BackendUnavailable));
            }
        };
        let token = match &params.presigned {
            Some(p) => p.security_token.as_deref(),
            None => headers
                .get("x-amz-security-token")
                .and_then(|v| v.to_str().ok()),
        };
        let token_ok = match (&credential.session_token, token) {
            (None, None) => true,
            (Some(want), Some(got)) => bool::from(want.expose().as_bytes().ct_eq(got.as_bytes())),
            _ => false,
        };
        if !token_ok {
            return Err(Refusal::plain(GatewayResponseKind::UnrecognizedClient));
        }
        let amz_date = amz_date.into_owned();
        let prepared = Prepared {
            params,
            amz_date,
            credential,
            payload,
        };
        if let Payload::Declared(hash) | Payload::Unsigned(hash) = &prepared.payload {
            self.check_signature(&prepared, method, uri, headers, hash)?;
        }
        Ok(prepared)
    }

    /// The checks that need the body: its hash against the declared one, or,
    /// when none was declared, the signature over the body's hash. `method`,
    /// `uri` and `headers` are the ones given to [`prepare`](Self::prepare).
    pub fn finish(
        &self,
        prepared: Prepared,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<SigV4Identity, Refusal> {
        match &prepared.payload {
            Payload::Unsigned(_) => {}
            Payload::Declared(sent) => {
                if !sent.eq_ignore_ascii_case(&sha256_hex(body)) {
                    return Err(Refusal::new(
                        GatewayResponseKind::BadRequestBody,
                        "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ));
                }
            }
            Payload::Body => {
                self.check_signature(&prepared, method, uri, headers, &sha256_hex(body))?;
            }
        }
        let credential = &prepared.credential;
        Ok(SigV4Identity {
            access_key_id: credential.access_key_id.clone(),
            principal: credential.principal.clone(),
            can_invalidate_cache: credential.can_invalidate_cache,
        })
    }

    /// Builds the canonical request from `uri` as the client sent it, the
    /// string to sign from it, and compares the signature in constant time
    /// with one made by the cached signing key. With
    /// [`VerifierSettings::explain_mismatch`], a mismatch carries AWS's
    /// text with both, so a client developer can compare them with theirs.
    fn check_signature(
        &self,
        prepared: &Prepared,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        payload: &str,
    ) -> Result<(), Refusal> {
        use GatewayResponseKind::InvalidSignature;
        let params = &prepared.params;
        let pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let canonical = canonical_request(
            method,
            uri.path().as_bytes(),
            uri.query().unwrap_or("").as_bytes(),
            pairs.iter().copied(),
            params,
            payload,
            self.settings.canonical,
        )
        .map_err(|e| Refusal::new(InvalidSignature, e.to_string()))?;
        let sts = string_to_sign(&prepared.amz_date, &params.scope(), &canonical);
        let credential = &prepared.credential;
        let cached = self.signing_key(
            &credential.access_key_id,
            &credential.secret,
            &params.scope_date,
        );
        if cached.key.verify(&sts, &params.signature) {
            return Ok(());
        }
        if !self.settings.explain_mismatch {
            return Err(Refusal::plain(InvalidSignature));
        }
        Err(Refusal::new(
            InvalidSignature,
            format!(
                "{}\n\nThe Canonical String for this request should have been\n'{}'\n\nThe String-to-Sign should have been\n'{sts}'\n",
                InvalidSignature.default_message(),
                String::from_utf8_lossy(&canonical)
            ),
        ))
    }

    /// Clock skew and expiry, in whole seconds of the verifier's clock. A
    /// request signed more than `max_skew` in the future is refused in
    /// either form; in the past, a header-signed request may be `max_skew`
    /// old, a presigned URL `X-Amz-Expires` seconds old. The messages are
    /// AWS's, the skew written in minutes, rounded up.
    fn check_time(&self, params: &SignatureParams, signed_at: i64) -> Result<(), Refusal> {
        let now = i64::try_from(self.clock.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.settings.max_skew).unwrap_or(i64::MAX);
        let minutes = || format!("{} min.", self.settings.max_skew.div_ceil(60));
        if signed_at > now.saturating_add(skew) {
            return Err(Refusal::new(
                GatewayResponseKind::ExpiredToken,
                format!(
                    "Signature not yet current: {} is still later than {} ({} + {})",
                    amz(signed_at),
                    amz(now + skew),
                    amz(now),
                    minutes()
                ),
            ));
        }
        match &params.presigned {
            Some(p) => {
                if now > signed_at.saturating_add(i64::from(p.expires)) {
                    return Err(Refusal::new(
                        GatewayResponseKind::ExpiredToken,
                        "Request has expired",
                    ));
                }
            }
            None => {
                if signed_at < now.saturating_sub(skew) {
                    return Err(Refusal::new(
                        GatewayResponseKind::ExpiredToken,
                        format!(
                            "Signature expired: {} is now earlier than {} ({} - {})",
                            amz(signed_at),
                            amz(now - skew),
                            amz(now),
                            minutes()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What `x-amz-content-sha256` declares, checked by AWS's rules: it
    /// must be signed (in header form), and `UNSIGNED-PAYLOAD` only where
    /// allowed. Absent: the body's own hash is signed.
    fn declared_payload(
        &self,
        headers: &HeaderMap,
        params: &SignatureParams,
    ) -> Result<Payload, Refusal> {
        let sent = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok());
        let Some(sent) = sent else {
            return Ok(Payload::Body);
        };
        if params.presigned.is_none()
            && !params
                .signed_headers
                .iter()
                .any(|h| h == "x-amz-content-sha256")
        {
            return Err(Refusal::new(
                GatewayResponseKind::InvalidSignature,
                "The 'x-amz-content-sha256' header must be signed.",
            ));
        }
        if sent == UNSIGNED_PAYLOAD {
            return if self.settings.unsigned_payload {
                Ok(Payload::Unsigned(UNSIGNED_PAYLOAD.to_owned()))
            } else {
                Err(Refusal::new(
                    GatewayResponseKind::InvalidSignature,
                    "Unsigned payloads are not accepted.",
                ))
            };
        }
        Ok(Payload::Declared(sent.to_owned()))
    }

    /// The signing key for a credential and day, derived once and cached.
    ///
    /// Four HMACs on a miss. The map holds at most [`MAX_CACHED_KEYS`];
    /// past that it is emptied rather than trimmed, as in practice it holds
    /// a handful of keys and starting afresh costs one derivation each.
    fn signing_key(&self, access_key_id: &str, secret: &Secret, date: &str) -> Arc<CachedKey> {
        use std::hash::BuildHasher;
        let slot = self.hasher.hash_one((access_key_id, date));
        let hit = self.keys.read().ok().and_then(|k| k.get(&slot).cloned());
        if let Some(cached) = hit {
            // The slot is a hash: check what it holds. A rotated secret must
            // not verify with yesterday's key.
            if cached.access_key_id == access_key_id
                && cached.date == date
                && bool::from(
                    cached
                        .secret
                        .expose()
                        .as_bytes()
                        .ct_eq(secret.expose().as_bytes()),
                )
            {
                return cached;
            }
        }
        let key = SigningKey::derive(secret, date, &self.settings.region, &self.settings.service);
        let cached = Arc::new(CachedKey {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            secret: secret.clone(),
            key,
        });
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_CACHED_KEYS {
            keys.clear();
        }
        keys.insert(slot, cached.clone());
        cached
    }
}
