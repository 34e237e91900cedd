//! The frame of the OpenAPI document: title, server prefix, the bearer security scheme, the
//! error responses every admin route may give, and the shared error schema. The paths come from
//! the handlers' `#[utoipa::path]` attributes (collected in `admin::api`).

use super::error::ErrorBody;
use std::collections::BTreeMap;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        version = "1",
        description = "Organisations, teams, apps, members, virtual keys, subscriptions, stored \
            providers, models, prompts and prompt APIs, and the audit log. Authenticate with \
            `Authorization: Bearer` \
            (or `x-api-key`): the server's `admin_key`, or a JWT from the configured OIDC \
            issuer. Times are Unix milliseconds. Lists are paged with `limit` and `cursor`. \
            Errors are `{\"error\":{\"message\",\"type\",\"code\",\"param\"}}`."
    ),
    servers((url = "/admin/v1")),
    security(("bearer" = [])),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "orgs", description = "Organisations (tenants)"),
        (name = "teams", description = "Teams and their apps"),
        (name = "members", description = "Users and their roles"),
        (name = "keys", description = "Virtual keys"),
        (name = "subscriptions", description = "Access to models and APIs that need approval"),
        (name = "config", description = "Providers and models stored in the database"),
        (name = "prompts", description = "Prompts (immutable versions, labels, A/B splits, the \
            render playground) and prompt APIs (lifecycle) stored in the database"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "logs", description = "The call log: one row per request, paged and exported"),
        (name = "analytics", description = "Time series and top lists from the rollups; alert rules"),
    )
)]
struct Base;

/// The document before the routes are added.
pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// The document after the routes are added (nothing to do yet; kept as the one place to
/// post-process it).
pub fn finish(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The `admin_key`, or a JWT from the OIDC issuer (`x-api-key` works too)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error responses of every authenticated admin route.
pub struct Errors;

impl IntoResponses for Errors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
        [
            (
                "400",
                "Malformed JSON or an unacceptable field (`param` names it)",
            ),
            ("401", "No credential, or an unknown or expired one"),
            (
                "403",
                "The caller's role does not allow this (the message names the role needed)",
            ),
            ("404", "No such object in this organisation"),
            (
                "409",
                "Conflicts with the current state, or managed by `switchboard apply`",
            ),
            ("500", "Internal error (details in the server log)"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            (status.to_owned(), RefOr::T(response))
        })
        .collect()
    }
}
