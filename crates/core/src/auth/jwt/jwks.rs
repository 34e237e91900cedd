//! The issuer's signing keys: fetched on first use (through OIDC discovery unless a JWKS URL is
//! configured), cached for the TTL, refetched when a token names an unknown `kid` (key rotation)
//! at most once per [`REFETCH_INTERVAL`].
//!
//! Readers take a lock-free snapshot. Fetches are single-flight: a tokio mutex serialises them,
//! and a task that waited on it first checks whether the fetch it waited for already answered
//! (success or failure) instead of fetching again, so a burst of requests at expiry or during an
//! outage costs the identity provider one request.
//!
//! When a refresh fails, keys already held stay usable for one more TTL (an identity-provider
//! blip should not log everyone out); with nothing usable the caller gets `JwksUnavailable`.

use super::JwtError;
use arc_swap::ArcSwapOption;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Minimum time between two fetches caused by unknown `kid`s: a rotation is followed within
/// this, and a flood of tokens with made-up `kid`s cannot turn us into a load on the issuer.
pub(super) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed fetch, requests within this time reuse the failure instead of fetching again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);
/// One discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents and key sets are a few KiB; anything this large is not one.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// RSA keys shorter than this are refused (NIST has disallowed them since 2013).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// JWKS members are base64url without padding, but some issuers pad.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One usable signing key of the issuer.
#[derive(Debug)]
pub(super) struct VerifyKey {
    pub(super) kid: Option<String>,
    /// The algorithm the JWKS pins the key to, if any.
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    /// For EC keys, the one algorithm their curve is used with.
    curve_alg: Option<Algorithm>,
    pub(super) key: DecodingKey,
}

impl VerifyKey {
    fn accepts(&self, alg: Algorithm) -> bool {
        alg.family() == self.family
            && self.alg.is_none_or(|pinned| pinned == alg)
            && self.curve_alg.is_none_or(|curve_alg| curve_alg == alg)
    }
}

/// One fetched key set.
#[derive(Debug)]
struct KeySet {
    keys: Vec<Arc<VerifyKey>>,
    fetched_at: Instant,
}

impl KeySet {
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<VerifyKey>> {
        self.keys
            .iter()
            .filter(|k| k.accepts(alg) && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .cloned()
            .collect()
    }
}

/// Fetch bookkeeping, only touched under the refresh mutex.
#[derive(Debug, Default)]
struct RefreshState {
    /// `jwks_uri` found through discovery; forgotten when fetching from it fails.
    discovered: Option<String>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

#[derive(Debug)]
pub(super) struct KeyCache {
    http: reqwest::Client,
    issuer: String,
    jwks_url: Option<String>,
    ttl: Duration,
    refetch_interval: Duration,
    current: ArcSwapOption<KeySet>,
    /// Completed fetch attempts, successful or not: lets a task that waited for the refresh lock
    /// see that the fetch it waited for has answered.
    attempts: AtomicU64,
    refresh: tokio::sync::Mutex<RefreshState>,
}

/// Why a refresh is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Nothing cached, or the cache is past its TTL.
    Expired,
    /// The cache is fresh but lacks the token's key.
    UnknownKey,
}

impl KeyCache {
    pub(super) fn new(
        http: reqwest::Client,
        issuer: String,
        jwks_url: Option<String>,
        ttl: Duration,
    ) -> Self {
        KeyCache {
            http,
            issuer,
            jwks_url,
            ttl,
            refetch_interval: REFETCH_INTERVAL,
            current: ArcSwapOption::empty(),
            attempts: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        }
    }

    #[cfg(test)]
    pub(super) fn set_refetch_interval(&mut self, interval: Duration) {
        self.refetch_interval = interval;
    }

    /// Fresh keys are used as they are; stale ones only while refreshing fails, for one more TTL.
    fn is_fresh(&self, set: &KeySet, now: Instant) -> bool {
        now.saturating_duration_since(set.fetched_at) < self.ttl
    }

    fn is_usable(&self, set: &KeySet, now: Instant) -> bool {
        now.saturating_duration_since(set.fetched_at) < self.ttl.saturating_mul(2)
    }

    pub(super) async fn prefetch(&self) -> Result<usize, JwtError> {
        let seen = self.attempts.load(Ordering::Acquire);
        let set = self.refresh(Need::Expired, seen).await?;
        Ok(set.keys.len())
    }

    /// The keys that may have signed a token with this `kid` and `alg`: the one with that `kid`,
    /// or without one every key of the algorithm. Empty when the issuer has no such key.
    pub(super) async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<VerifyKey>>, JwtError> {
        // Attempts first, then the snapshot: a fetch finishing in between makes `refresh` see a
        // new attempt count and reuse its answer rather than fetch again.
        let seen = self.attempts.load(Ordering::Acquire);
        let snapshot = self.current.load_full();
        let need = match &snapshot {
            Some(set) if self.is_fresh(set, Instant::now()) => {
                let found = set.select(kid, alg);
                if !found.is_empty() {
                    return Ok(found);
                }
                Need::UnknownKey
            }
            _ => Need::Expired,
        };
        let set = self.refresh(need, seen).await?;
        Ok(set.select(kid, alg))
    }

    /// Makes sure the key set is as current as the rules allow and returns it. `seen` is the
    /// attempt count the caller observed before deciding it needs a refresh.
    async fn refresh(&self, need: Need, seen: u64) -> Result<Arc<KeySet>, JwtError> {
        let mut state = self.refresh.lock().await;
        let now = Instant::now();
        let current = self.current.load_full();
        let usable = current.clone().filter(|set| self.is_usable(set, now));
        let unavailable = |state: &RefreshState| {
            JwtError::JwksUnavailable(
                state
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no keys fetched yet".to_owned()),
            )
        };

        // Someone fetched while we waited for the lock: take their answer.
        if self.attempts.load(Ordering::Acquire) != seen {
            return usable.ok_or_else(|| unavailable(&state));
        }
        let since_attempt = state
            .last_attempt
            .map(|at| now.saturating_duration_since(at));
        match need {
            Need::UnknownKey if since_attempt.is_some_and(|d| d < self.refetch_interval) => {
                if let Some(set) = current {
                    debug!("token names an unknown key; JWKS refetch is rate-limited");
                    return Ok(set);
                }
            }
            Need::Expired
                if state.last_error.is_some()
                    && since_attempt.is_some_and(|d| d < FAILURE_BACKOFF) =>
            {
                return usable.ok_or_else(|| unavailable(&state));
            }
            _ => {}
        }

        let result = self.fetch(&mut state).await;
        state.last_attempt = Some(Instant::now());
        // Published while the lock is still held, so waiters see it once they get the lock.
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(set) => {
                debug!(keys = set.keys.len(), "fetched the issuer's signing keys");
                let set = Arc::new(set);
                self.current.store(Some(Arc::clone(&set)));
                state.last_error = None;
                Ok(set)
            }
            Err(message) => {
                warn!(issuer = %self.issuer, error = %message, "fetching the issuer's signing keys failed");
                state.last_error = Some(message);
                usable.ok_or_else(|| unavailable(&state))
            }
        }
    }

    /// One fetch: discovery when needed, then the key set.
    async fn fetch(&self, state: &mut RefreshState) -> Result<KeySet, String> {
        let url = match (&self.jwks_url, &state.discovered) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => {
                let url = self.discover().await?;
                state.discovered = Some(url.clone());
                url
            }
        };
        let document: JwksDocument = match self.get_json(&url).await {
            Ok(document) => document,
            Err(err) => {
                // The issuer may have moved its keys: ask discovery again next time.
                state.discovered = None;
                return Err(err);
            }
        };
        let mut keys = Vec::new();
        for value in document.keys {
            match usable_key(value) {
                Ok(key) => keys.push(Arc::new(key)),
                Err(why) => debug!(issuer = %self.issuer, "skipping a JWKS key: {why}"),
            }
        }
        if keys.is_empty() {
            return Err(format!("{url} holds no usable signing key"));
        }
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }

    async fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document: Discovery = self.get_json(&url).await?;
        // OIDC Discovery 4.3: the document must be the issuer's own.
        if document.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(format!(
                "{url} is for issuer `{}`, not `{}`",
                document.issuer, self.issuer
            ));
        }
        Ok(document.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "GET {url}: response larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: unexpected document: {e}"))
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Keys are parsed one by one so that one odd key does not hide the others.
#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// A JWKS entry as a verification key, checked enough that verifying with it cannot fail on
/// the key's shape (wrong lengths would otherwise surface inside the crypto library).
fn usable_key(value: serde_json::Value) -> Result<VerifyKey, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
    let common = &jwk.common;
    if matches!(common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key".to_owned());
    }
    if let Some(ops) = &common.key_operations {
        if !ops.iter().any(|op| matches!(op, KeyOperations::Verify)) {
            return Err("key_ops excludes verify".to_owned());
        }
    }
    let alg = match common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Err("unknown alg".to_owned()),
        Some(pinned) => match Algorithm::try_from(pinned) {
            Ok(alg) if super::is_asymmetric(alg) => Some(alg),
            _ => {
                return Err(format!(
                    "alg {pinned} is not a signature algorithm we accept"
                ))
            }
        },
    };
    let decode = |field: &str, value: &str| {
        B64URL
            .decode(value)
            .map_err(|_| format!("`{field}` is not base64url"))
    };
    let (family, curve_alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = decode("n", &rsa.n)?;
            let e = decode("e", &rsa.e)?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(format!("RSA key of {} bits is too short", significant * 8));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent out of range".to_owned());
            }
            let key = DecodingKey::from_rsa_raw_components(&n, &e);
            (AlgorithmFamily::Rsa, None, key)
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (curve_alg, len) = match ec.curve {
                EllipticCurve::P256 => (Algorithm::ES256, 32),
                EllipticCurve::P384 => (Algorithm::ES384, 48),
                _ => return Err("unsupported EC curve".to_owned()),
            };
            let x = decode("x", &ec.x)?;
            let y = decode("y", &ec.y)?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates of the wrong length".to_owned());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (
                AlgorithmFamily::Ec,
                Some(curve_alg),
                DecodingKey::from_ec_der(&point),
            )
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("unsupported OKP curve".to_owned());
            }
            let x = decode("x", &okp.x)?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong length".to_owned());
            }
            (AlgorithmFamily::Ed, None, DecodingKey::from_ed_der(&x))
        }
        // A symmetric key in a public set would be a shared secret made public.
        AlgorithmParameters::OctetKey(_) => return Err("a symmetric key".to_owned()),
        _ => return Err("unsupported key type".to_owned()),
    };
    if alg.is_some_and(|alg| alg.family() != family) {
        return Err("alg does not match the key type".to_owned());
    }
    Ok(VerifyKey {
        kid: common.key_id.clone(),
        alg,
        family,
        curve_alg,
        key,
    })
}
