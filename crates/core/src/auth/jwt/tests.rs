//! The verifier against a real local identity provider: an axum server on port 0 serving
//! discovery and a JWKS it can change mid-test, with tokens signed here (Ed25519 keys from
//! seeds, RSA and P-256 keys from `auth/testdata`).

use super::claims::grant_from_claims;
use super::*;
use crate::auth::grant::RoleGrant;
use crate::auth::roles::Role;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

const AUDIENCE: &str = "switchboard";

// ---------------------------------------------------------------- the identity provider

#[derive(Default)]
struct Idp {
    /// The issuer discovery claims; empty means the server's own URL.
    issuer_override: String,
    jwks: Value,
    /// Answer every request with this status instead.
    fail_with: Option<u16>,
    delay: Duration,
    discovery_hits: usize,
    jwks_hits: usize,
}

type Shared = Arc<Mutex<Idp>>;

struct TestIdp {
    url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl TestIdp {
    async fn start(keys: &[&TestKey]) -> TestIdp {
        let state: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state((Arc::clone(&state), url.clone()));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let idp = TestIdp { url, state, server };
        idp.publish(keys);
        idp
    }

    fn publish(&self, keys: &[&TestKey]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
        };
        self.state.lock().jwks = serde_json::to_value(set).unwrap();
    }

    fn hits(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.discovery_hits, state.jwks_hits)
    }

    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(self.settings(), reqwest::Client::new())
    }

    fn settings(&self) -> OidcSettings {
        let mut settings = OidcSettings::new(self.url.clone(), AUDIENCE);
        settings.claims.roles = Some("roles".to_owned());
        settings
    }

    fn claims(&self) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        json!({
            "iss": self.url, "aud": AUDIENCE, "sub": "user-1", "email": "ada@example.com",
            "iat": now, "exp": now + 600,
            "org": "acme", "team": "search", "role": "developer",
        })
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn discovery(State((state, url)): State<(Shared, String)>) -> Response {
    let (fail, delay, issuer) = {
        let mut s = state.lock();
        s.discovery_hits += 1;
        let issuer = if s.issuer_override.is_empty() {
            url.clone()
        } else {
            s.issuer_override.clone()
        };
        (s.fail_with, s.delay, issuer)
    };
    tokio::time::sleep(delay).await;
    if let Some(code) = fail {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    Json(json!({ "issuer": issuer, "jwks_uri": format!("{url}/jwks") })).into_response()
}

async fn jwks(State((state, _)): State<(Shared, String)>) -> Response {
    let (fail, delay, body) = {
        let mut s = state.lock();
        s.jwks_hits += 1;
        (s.fail_with, s.delay, s.jwks.clone())
    };
    tokio::time::sleep(delay).await;
    if let Some(code) = fail {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    Json(body).into_response()
}

// ---------------------------------------------------------------- signing keys

struct TestKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl TestKey {
    fn new(alg: Algorithm, kid: &str, key: EncodingKey) -> TestKey {
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        TestKey {
            alg,
            kid: kid.to_owned(),
            key,
            jwk,
        }
    }

    /// An Ed25519 key from a one-byte seed: PKCS#8 v1 is a fixed 16-byte prefix and the seed.
    fn ed25519(kid: &str, seed: u8) -> TestKey {
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&[seed; 32]);
        TestKey::new(Algorithm::EdDSA, kid, EncodingKey::from_ed_der(&der))
    }

    fn rsa(kid: &str) -> TestKey {
        let pem = include_bytes!("../testdata/rsa2048.pem");
        TestKey::new(
            Algorithm::RS256,
            kid,
            EncodingKey::from_rsa_pem(pem).unwrap(),
        )
    }

    fn p256(kid: &str) -> TestKey {
        let pem = include_bytes!("../testdata/ec_p256.pem");
        TestKey::new(
            Algorithm::ES256,
            kid,
            EncodingKey::from_ec_pem(pem).unwrap(),
        )
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn invalid(result: Result<UserGrant, JwtError>) -> String {
    match result {
        Err(JwtError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn b64(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_valid_token_gives_the_grant_with_its_roles() {
    let key = TestKey::ed25519("k1", 1);
    let idp = TestIdp::start(&[&key]).await;
    let mut claims = idp.claims();
    claims["roles"] = json!([
        "acme:admin",
        "globex:infra:viewer",
        {"org": "initech", "role": "owner"},
        {"org": "initech", "team": "tps", "role": "Developer"},
        "acme:billing-manager",
        "acme:admin",
        42,
    ]);
    let grant = idp.verifier().verify(&key.sign(&claims)).await.unwrap();

    let role = |org: &str, team: Option<&str>, role| RoleGrant {
        org: org.to_owned(),
        team: team.map(str::to_owned),
        role,
    };
    assert_eq!(grant.subject, "user-1");
    assert_eq!(grant.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        grant.roles,
        vec![
            role("acme", Some("search"), Role::Developer),
            role("acme", None, Role::Admin),
            role("globex", Some("infra"), Role::Viewer),
            role("initech", None, Role::Owner),
            role("initech", Some("tps"), Role::Developer),
        ],
        "unknown roles and malformed entries are skipped, duplicates merged"
    );
    assert_eq!(idp.hits(), (1, 1), "discovery, then the JWKS");
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_and_an_explicit_jwks_url_skips_discovery() {
    let (rsa, ec) = (TestKey::rsa("rsa"), TestKey::p256("ec"));
    let idp = TestIdp::start(&[&rsa, &ec]).await;
    let mut settings = idp.settings();
    settings.jwks_url = Some(format!("{}/jwks", idp.url));
    let verifier = JwtVerifier::new(settings, reqwest::Client::new());
    for key in [&rsa, &ec] {
        let grant = verifier.verify(&key.sign(&idp.claims())).await.unwrap();
        assert_eq!(grant.subject, "user-1");
    }
    assert_eq!(verifier.prefetch_keys().await.unwrap(), 2);
    assert_eq!(idp.hits().0, 0, "no discovery with a configured JWKS URL");
}

#[tokio::test]
async fn issuer_audience_and_time_are_checked() {
    let key = TestKey::ed25519("k1", 1);
    let idp = TestIdp::start(&[&key]).await;
    let verifier = idp.verifier();
    let now = jsonwebtoken::get_current_timestamp();
    let with = |field: &str, value: Value| {
        let mut claims = idp.claims();
        claims[field] = value;
        key.sign(&claims)
    };

    let wrong_iss = with("iss", json!("https://evil.example"));
    assert_eq!(invalid(verifier.verify(&wrong_iss).await), "wrong issuer");
    let wrong_aud = with("aud", json!(["other-app"]));
    assert_eq!(invalid(verifier.verify(&wrong_aud).await), "wrong audience");
    let expired = with("exp", json!(now - 120));
    assert_eq!(invalid(verifier.verify(&expired).await), "token expired");
    let early = with("nbf", json!(now + 600));
    assert!(invalid(verifier.verify(&early).await).contains("not valid yet"));
    let string_exp = with("exp", json!("never"));
    assert!(invalid(verifier.verify(&string_exp).await).contains("exp"));

    let mut no_aud = idp.claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert!(invalid(verifier.verify(&key.sign(&no_aud)).await).contains("aud"));
    let mut no_sub = idp.claims();
    no_sub.as_object_mut().unwrap().remove("sub");
    assert!(invalid(verifier.verify(&key.sign(&no_sub)).await).contains("sub"));

    // Within the leeway (60 s) both are fine; one audience among several is enough.
    let recent = with("exp", json!(now - 30));
    assert!(verifier.verify(&recent).await.is_ok());
    let nearly = with("nbf", json!(now + 30));
    assert!(verifier.verify(&nearly).await.is_ok());
    let several = with("aud", json!(["other-app", AUDIENCE]));
    assert!(verifier.verify(&several).await.is_ok());
}

#[tokio::test]
async fn a_bad_signature_is_invalid() {
    let (good, impostor) = (TestKey::ed25519("k1", 1), TestKey::ed25519("k1", 2));
    let idp = TestIdp::start(&[&good]).await;
    let verifier = idp.verifier();
    // Same kid, different private key.
    assert_eq!(
        invalid(verifier.verify(&impostor.sign(&idp.claims())).await),
        "bad signature"
    );
    // A genuine token whose payload was edited.
    let token = good.sign(&idp.claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut claims = idp.claims();
    claims["role"] = json!("owner");
    let forged_payload = b64(&claims);
    parts[1] = &forged_payload;
    assert_eq!(
        invalid(verifier.verify(&parts.join(".")).await),
        "bad signature"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_to_follow_a_rotation() {
    let (old, new) = (TestKey::ed25519("old", 1), TestKey::ed25519("new", 2));
    let idp = TestIdp::start(&[&old]).await;

    // With the default rate limit, a kid seen right after a fetch does not refetch.
    let verifier = idp.verifier();
    verifier.verify(&old.sign(&idp.claims())).await.unwrap();
    idp.publish(&[&new]);
    let reason = invalid(verifier.verify(&new.sign(&idp.claims())).await);
    assert!(reason.contains("no signing key"), "{reason}");
    assert_eq!(idp.hits().1, 1, "rate-limited: no second JWKS fetch");

    // Once the interval has passed (here: no interval), the rotation is followed.
    idp.publish(&[&old]);
    let mut verifier = idp.verifier();
    verifier.keys.set_refetch_interval(Duration::ZERO);
    verifier.verify(&old.sign(&idp.claims())).await.unwrap();
    idp.publish(&[&new]);
    let grant = verifier.verify(&new.sign(&idp.claims())).await.unwrap();
    assert_eq!(grant.subject, "user-1");
    assert_eq!(idp.hits().1, 3);
    // The old key is gone from the fresh set: its tokens are now refused.
    assert!(invalid(verifier.verify(&old.sign(&idp.claims())).await).contains("no signing key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_share_one_fetch() {
    let key = TestKey::ed25519("k1", 1);
    let idp = TestIdp::start(&[&key]).await;
    idp.state.lock().delay = Duration::from_millis(100);
    let verifier = Arc::new(idp.verifier());
    let token = key.sign(&idp.claims());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (verifier, token) = (Arc::clone(&verifier), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(idp.hits(), (1, 1));
}

#[tokio::test]
async fn an_unreachable_or_failing_issuer_is_jwks_unavailable() {
    let key = TestKey::ed25519("k1", 1);
    // Nothing listens on a port that was just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut claims = json!({ "iss": dead, "aud": AUDIENCE, "sub": "u" });
    claims["exp"] = json!(jsonwebtoken::get_current_timestamp() + 600);
    let verifier = JwtVerifier::new(OidcSettings::new(dead, AUDIENCE), reqwest::Client::new());
    let result = verifier.verify(&key.sign(&claims)).await;
    assert!(
        matches!(result, Err(JwtError::JwksUnavailable(_))),
        "{result:?}"
    );

    let idp = TestIdp::start(&[&key]).await;
    idp.state.lock().fail_with = Some(500);
    let result = idp.verifier().verify(&key.sign(&idp.claims())).await;
    assert!(
        matches!(result, Err(JwtError::JwksUnavailable(_))),
        "{result:?}"
    );

    // Discovery that names another issuer is refused.
    let idp = TestIdp::start(&[&key]).await;
    idp.state.lock().issuer_override = "https://elsewhere.example".to_owned();
    let result = idp.verifier().prefetch_keys().await;
    assert!(
        matches!(&result, Err(JwtError::JwksUnavailable(m)) if m.contains("elsewhere")),
        "{result:?}"
    );
}

#[tokio::test]
async fn held_keys_outlive_a_failed_refresh_for_one_more_ttl() {
    let key = TestKey::ed25519("k1", 1);
    let idp = TestIdp::start(&[&key]).await;
    let mut settings = idp.settings();
    settings.jwks_ttl = Duration::from_secs(1);
    let verifier = JwtVerifier::new(settings, reqwest::Client::new());
    let token = key.sign(&idp.claims());
    verifier.verify(&token).await.unwrap();

    idp.state.lock().fail_with = Some(503);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Stale (past the TTL), the refresh fails, the held key still verifies.
    verifier.verify(&token).await.unwrap();
    assert_eq!(idp.hits().1, 2);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Past two TTLs nothing is usable any more.
    let result = verifier.verify(&token).await;
    assert!(
        matches!(result, Err(JwtError::JwksUnavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn unusable_jwks_entries_are_skipped() {
    let key = TestKey::ed25519("good", 1);
    let idp = TestIdp::start(&[]).await;
    let good = serde_json::to_value(&key.jwk).unwrap();
    idp.state.lock().jwks = json!({ "keys": [
        { "kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA" },
        { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" },
        { "kty": "RSA", "kid": "tiny", "n": "AQAB", "e": "AQAB" },
        { "kty": "EC", "crv": "P-256", "kid": "bad-ec", "x": "AA", "y": "AA" },
        { "kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": key.jwk_x() },
        { "kty": "weird" },
        good,
    ]});
    let verifier = idp.verifier();
    assert_eq!(verifier.prefetch_keys().await.unwrap(), 1);
    // A token naming a skipped key is refused without touching it.
    let short = TestKey::ed25519("short", 1);
    assert!(invalid(verifier.verify(&short.sign(&idp.claims())).await).contains("no signing key"));
    assert!(verifier.verify(&key.sign(&idp.claims())).await.is_ok());
}

#[tokio::test]
async fn garbage_none_and_hmac_tokens_are_invalid() {
    let key = TestKey::ed25519("k1", 1);
    let idp = TestIdp::start(&[&key]).await;
    let verifier = idp.verifier();
    let long = "eyJ".to_owned() + &"A".repeat(20_000);
    for garbage in ["", "abc", "a.b.c", "eyJ.eyJ.sig", &long] {
        invalid(verifier.verify(garbage).await);
    }

    let header = json!({ "alg": "none", "typ": "JWT" });
    let unsigned = format!("{}.{}.", b64(&header), b64(&idp.claims()));
    invalid(verifier.verify(&unsigned).await);

    // HS256 "signed" with the public key's bytes: the classic key-confusion attack.
    let secret = EncodingKey::from_secret(key.jwk_x().as_bytes());
    let hmac = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &idp.claims(), &secret);
    let reason = invalid(verifier.verify(&hmac.unwrap()).await);
    assert!(reason.contains("not accepted"), "{reason}");

    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".to_owned());
    header.crit = Some(vec!["exp".to_owned()]);
    let critical = jsonwebtoken::encode(&header, &idp.claims(), &key.key).unwrap();
    assert!(invalid(verifier.verify(&critical).await).contains("critical"));
    assert_eq!(idp.hits().1, 0, "none of these needed the keys");

    // A well-formed header and nothing else: no kid, so tried against the keys; no signature.
    assert_eq!(
        invalid(verifier.verify("eyJhbGciOiJFZERTQSJ9..").await),
        "bad signature"
    );
}

#[test]
fn looks_like_jwt_routes_cheaply() {
    let key = TestKey::ed25519("k1", 1);
    let token = key.sign(&json!({ "sub": "x", "exp": 1 }));
    assert!(looks_like_jwt(&token));
    for not in [
        "sk-sb-abcdefgh",
        "eyJhbGciOi",
        "eyJ.a",
        "eyJa.b.c.d",
        "eyJa..c",
        "eyJa.b.",
        "eyJa.b+/.c",
        "Bearer eyJa.b.c",
    ] {
        assert!(!looks_like_jwt(not), "{not}");
    }
}

#[test]
fn claims_map_through_configured_names_and_dotted_paths() {
    let names = ClaimNames {
        org: "https://example.com/org".to_owned(),
        team: "ext.team".to_owned(),
        role: "ext.roles".to_owned(),
        roles: None,
    };
    let claims = json!({
        "sub": "u", "https://example.com/org": "acme",
        "ext": { "team": "", "roles": ["ADMIN", "viewer", "auditor"] },
    });
    let grant = grant_from_claims(claims.as_object().unwrap(), &names).unwrap();
    let roles: Vec<(String, Option<String>, Role)> = grant
        .roles
        .into_iter()
        .map(|r| (r.org, r.team, r.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("acme".to_owned(), None, Role::Admin),
            ("acme".to_owned(), None, Role::Viewer),
        ]
    );

    // A role without an org gives no role, but the person is still signed in.
    let claims = json!({ "sub": "u", "role": "admin" });
    let grant = grant_from_claims(claims.as_object().unwrap(), &ClaimNames::default()).unwrap();
    assert!(grant.roles.is_empty());
    assert_eq!(grant.email, None);
}

impl TestKey {
    fn jwk_x(&self) -> String {
        match &self.jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(okp) => okp.x.clone(),
            _ => panic!("not an OKP key"),
        }
    }
}
