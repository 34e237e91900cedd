//! Who is calling. In this version the only key is the bootstrap `admin_key` from the config;
//! virtual keys, tenants and roles come with the access layer and plug in here.

pub mod grant;
pub mod keys;
pub mod roles;

use crate::config::Secret;
use crate::error::GatewayError;
use subtle::ConstantTimeEq;

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The bootstrap admin key: may call every model.
    Admin,
}

/// Checks a presented key against the configured ones.
#[derive(Clone, Debug)]
pub struct Authenticator {
    admin_key: Option<Secret>,
}

impl Authenticator {
    pub fn new(admin_key: Option<Secret>) -> Self {
        Authenticator { admin_key }
    }

    /// Constant-time comparison, so that response timing does not reveal how much of a guessed
    /// key was right.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Principal, GatewayError> {
        let presented = presented
            .filter(|k| !k.is_empty())
            .ok_or(GatewayError::MissingKey)?;
        match &self.admin_key {
            Some(admin) if bool::from(admin.expose().as_bytes().ct_eq(presented.as_bytes())) => {
                Ok(Principal::Admin)
            }
            _ => Err(GatewayError::InvalidKey),
        }
    }

    /// Whether `who` may call the model `alias`.
    pub fn may_call(&self, who: &Principal, _alias: &str) -> bool {
        match who {
            Principal::Admin => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_key_is_accepted_and_others_rejected() {
        let auth = Authenticator::new(Some(Secret("sk-admin".into())));
        assert_eq!(
            auth.authenticate(Some("sk-admin")).unwrap(),
            Principal::Admin
        );
        assert!(matches!(
            auth.authenticate(Some("sk-other")),
            Err(GatewayError::InvalidKey)
        ));
        assert!(matches!(
            auth.authenticate(Some("")),
            Err(GatewayError::MissingKey)
        ));
        assert!(matches!(
            auth.authenticate(None),
            Err(GatewayError::MissingKey)
        ));
    }

    #[test]
    fn no_admin_key_rejects_everything() {
        let auth = Authenticator::new(None);
        assert!(matches!(
            auth.authenticate(Some("x")),
            Err(GatewayError::InvalidKey)
        ));
    }
}
