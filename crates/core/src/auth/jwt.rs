//! Signed-in people: verifies JWTs from one OIDC issuer and turns their claims into a
//! [`UserGrant`]. The issuer's signing keys come from its JWKS (found through discovery unless
//! configured), cached in `jwt/jwks.rs`; the claims mapping is in `jwt/claims.rs`.
//!
//! Only asymmetric algorithms are accepted (RS*, PS*, ES256/384, EdDSA): the JWKS is public, so
//! an HMAC algorithm would let anyone who read it mint tokens. `alg: none` does not even parse.
//! Keys are never taken from the token itself (`jku`, `jwk`, `x5u` headers are ignored).

mod claims;
mod jwks;
#[cfg(test)]
mod tests;

use super::grant::UserGrant;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use std::time::Duration;

/// Default time a fetched JWKS is trusted before it is fetched again.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(10 * 60);
/// Default clock skew allowed on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Leeway beyond this is clamped: it would make expiry meaningless (and the library subtracts it
/// from the current time).
const MAX_LEEWAY_SECS: u64 = 3600;
/// Longer "tokens" are refused before any parsing; real ID and access tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// When a token names no key, at most this many keys of its algorithm are tried, so that a
/// JWKS with many keys cannot be turned into a CPU amplifier.
const MAX_KEYLESS_CANDIDATES: usize = 4;

/// Which claims of the token carry the caller's organisation, team and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNames {
    /// Claim with the organisation's name (slug). Default `org`.
    pub org: String,
    /// Claim with the team's name; absent or empty means the role is on the whole org.
    /// Default `team`.
    pub team: String,
    /// Claim with the role (`owner`, `admin`, `developer`, `viewer`; a string or a list of
    /// strings). Default `role`.
    pub role: String,
    /// Optional claim with a list of roles, each `{"org", "team"?, "role"}` or a string
    /// `"org:role"` / `"org:team:role"`, for people with roles in several places.
    pub roles: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            org: "org".to_owned(),
            team: "team".to_owned(),
            role: "role".to_owned(),
            roles: None,
        }
    }
}

/// How to trust one OIDC issuer. A claim name may be a dotted path (`realm_access.role`) into
/// nested objects; a claim whose name itself contains dots (`https://example.com/org`) is found
/// first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// Must equal the token's `iss` exactly.
    pub issuer: String,
    /// Must be one of the token's `aud` values.
    pub audience: String,
    /// Where the signing keys are. `None`: discovered at
    /// `{issuer}/.well-known/openid-configuration` (its `jwks_uri`).
    pub jwks_url: Option<String>,
    pub claims: ClaimNames,
    /// How long fetched keys are used before being fetched again.
    pub jwks_ttl: Duration,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most an hour).
    pub leeway_secs: u64,
}

impl OidcSettings {
    /// Settings with the defaults: discovery, claims `org`/`team`/`role`, 10 min TTL, 60 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        OidcSettings {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            claims: ClaimNames::default(),
            jwks_ttl: DEFAULT_JWKS_TTL,
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Why a token was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token is malformed, badly signed, expired, or for another issuer or audience (401).
    /// The reason is short and never quotes the token.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched, so no verdict is possible (503). The message is
    /// for the log.
    #[error("the identity provider's signing keys are unavailable: {0}")]
    JwksUnavailable(String),
}

impl JwtError {
    fn invalid(reason: impl Into<String>) -> Self {
        JwtError::Invalid(reason.into())
    }
}

/// Verifies tokens of one issuer. Cheap to share (`Arc`); keys are fetched lazily and shared by
/// all verifications.
#[derive(Debug)]
pub struct JwtVerifier {
    settings: OidcSettings,
    /// Issuer, audience, required claims and leeway; `algorithms` is set per token.
    validation: Validation,
    keys: jwks::KeyCache,
}

impl JwtVerifier {
    pub fn new(settings: OidcSettings, http: reqwest::Client) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        // `sub` names the person; `iss` and `aud` must be present, not merely right when present.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = settings.leeway_secs.min(MAX_LEEWAY_SECS);
        let keys = jwks::KeyCache::new(
            http,
            settings.issuer.clone(),
            settings.jwks_url.clone(),
            settings.jwks_ttl,
        );
        JwtVerifier {
            settings,
            validation,
            keys,
        }
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Fetches the issuer's keys now (e.g. at startup, to report a misconfiguration early)
    /// instead of on the first token; returns how many usable keys it has.
    pub async fn prefetch_keys(&self) -> Result<usize, JwtError> {
        self.keys.prefetch().await
    }

    /// Checks the token's signature against the issuer's keys, then `iss`, `aud`, `exp` and
    /// `nbf` (with leeway), and maps its claims to the caller's grant.
    pub async fn verify(&self, token: &str) -> Result<UserGrant, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::invalid("token too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| JwtError::invalid("malformed token or unsupported algorithm"))?;
        if !is_asymmetric(header.alg) {
            return Err(JwtError::invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        // RFC 7515 4.1.11: extensions marked critical must be understood; we understand none.
        if header.crit.as_ref().is_some_and(|crit| !crit.is_empty()) {
            return Err(JwtError::invalid("unsupported critical header"));
        }
        let kid = header.kid.as_deref();
        let candidates = self.keys.keys_for(kid, header.alg).await?;
        if candidates.is_empty() {
            return Err(JwtError::invalid(
                "no signing key of the issuer matches the token",
            ));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];

        let mut last = JwtError::invalid("bad signature");
        for key in candidates.iter().take(MAX_KEYLESS_CANDIDATES) {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => {
                    return claims::grant_from_claims(&data.claims, &self.settings.claims);
                }
                // Without a `kid` another key of the set may be the signer.
                Err(err) if matches!(err.kind(), ErrorKind::InvalidSignature) => {
                    last = invalid_from(&err);
                }
                Err(err) => return Err(invalid_from(&err)),
            }
        }
        Err(last)
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    )
}

/// A short reason for the client and the log; never includes token content.
fn invalid_from(err: &jsonwebtoken::errors::Error) -> JwtError {
    let reason = match err.kind() {
        ErrorKind::ExpiredSignature => "token expired".to_owned(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim `{claim}`"),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim `{claim}`"),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the signing key".to_owned(),
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => "the issuer's key cannot verify this token".to_owned(),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token".to_owned(),
        _ => "invalid token".to_owned(),
    };
    JwtError::Invalid(reason)
}

/// Whether a presented credential is shaped like a JWT (three non-empty base64url segments, a
/// JSON header), so the authenticator can route it without trying to verify it. Virtual keys
/// (`sk-sb-...`) never match.
pub fn looks_like_jwt(s: &str) -> bool {
    if !s.starts_with("eyJ") || s.len() > MAX_TOKEN_BYTES {
        return false;
    }
    let mut segments = 0;
    for segment in s.split('.') {
        segments += 1;
        let base64url = segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if segments > 3 || segment.is_empty() || !base64url {
            return false;
        }
    }
    segments == 3
}
