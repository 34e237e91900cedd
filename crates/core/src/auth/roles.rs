//! Roles of people within an organisation or team.

use std::fmt;
use std::str::FromStr;

/// A role, from most to least powerful. A role held on an organisation applies to all its
/// teams; a role held on a team applies to that team only.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes everything `other` may do.
    pub fn at_least(self, other: Role) -> bool {
        self <= other
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: use owner, admin, developer or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// What a person may ask the admin API to do. Which role allows which action is decided in
/// [`allows`], the one place the role matrix is written (docs/access.md shows it as a table).
/// Things only the platform admin (the `admin_key`) may do, such as creating organisations,
/// users, providers and models, are not actions: no role allows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read the organisation's (or team's) objects; keys are listed without secrets.
    Read,
    /// Create, update, rotate and revoke keys of the team's apps.
    ManageKeys,
    /// Ask for a subscription to a `requires_approval` model or API for one of the team's apps.
    RequestSubscription,
    /// Create, update and delete the team's apps.
    ManageApps,
    /// Give, change and take away developer and viewer roles.
    ManageMembers,
    /// Create and delete teams of the organisation.
    ManageTeams,
    /// Approve or reject subscriptions.
    DecideSubscriptions,
    /// Read the organisation's audit log.
    ReadAudit,
    /// Give, change and take away owner and admin roles.
    ManagePrivilegedMembers,
    /// Update or delete the organisation itself.
    ManageOrg,
    /// Read the usage totals and the standing of limits and budgets (the team's, for a team
    /// role).
    ReadUsage,
    /// Create, change and delete the rate limits and budgets whose match names the
    /// organisation.
    ManageLimits,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::Read,
        Action::ManageKeys,
        Action::RequestSubscription,
        Action::ManageApps,
        Action::ManageMembers,
        Action::ManageTeams,
        Action::DecideSubscriptions,
        Action::ReadAudit,
        Action::ManagePrivilegedMembers,
        Action::ManageOrg,
        Action::ReadUsage,
        Action::ManageLimits,
    ];

    /// Whether only a role held on the whole organisation allows this action: a role on one
    /// team covers that team's apps, keys, members and subscription requests, but not the
    /// organisation's structure, its approvals or its audit log.
    pub fn org_wide(self) -> bool {
        matches!(
            self,
            Action::ManageTeams
                | Action::DecideSubscriptions
                | Action::ReadAudit
                | Action::ManageOrg
                | Action::ManageLimits
        )
    }

    /// The least role that allows this action.
    pub fn min_role(self) -> Role {
        // `ALL` runs from most to least powerful, so the last role allowed is the least one.
        Role::ALL
            .into_iter()
            .rev()
            .find(|role| allows(*role, self))
            .unwrap_or(Role::Owner)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ManageKeys => "manage keys",
            Action::RequestSubscription => "request subscriptions",
            Action::ManageApps => "manage apps",
            Action::ManageMembers => "manage developers and viewers",
            Action::ManageTeams => "manage teams",
            Action::DecideSubscriptions => "approve or reject subscriptions",
            Action::ReadAudit => "read the audit log",
            Action::ManagePrivilegedMembers => "manage owners and admins",
            Action::ManageOrg => "update or delete the organisation",
            Action::ReadUsage => "read usage and the standing of limits",
            Action::ManageLimits => "manage the organisation's rate limits and budgets",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role matrix: whether `role` allows `action` (within the scope the role is held on).
/// Each role includes everything the roles below it may do.
pub fn allows(role: Role, action: Action) -> bool {
    let least = match action {
        Action::Read | Action::ReadUsage => Role::Viewer,
        Action::ManageKeys | Action::RequestSubscription => Role::Developer,
        Action::ManageApps
        | Action::ManageMembers
        | Action::ManageTeams
        | Action::DecideSubscriptions
        | Action::ReadAudit
        | Action::ManageLimits => Role::Admin,
        Action::ManagePrivilegedMembers | Action::ManageOrg => Role::Owner,
    };
    role.at_least(least)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_includes_the_ones_below() {
        for action in Action::ALL {
            for (i, role) in Role::ALL.iter().enumerate() {
                if allows(*role, action) {
                    for stronger in &Role::ALL[..i] {
                        assert!(allows(*stronger, action), "{stronger} {action}");
                    }
                }
            }
            assert!(allows(action.min_role(), action));
        }
    }

    #[test]
    fn the_matrix_is_as_documented() {
        assert!(allows(Role::Viewer, Action::Read));
        assert!(!allows(Role::Viewer, Action::ManageKeys));
        assert!(allows(Role::Developer, Action::ManageKeys));
        assert!(allows(Role::Developer, Action::RequestSubscription));
        assert!(!allows(Role::Developer, Action::ManageApps));
        assert!(allows(Role::Admin, Action::DecideSubscriptions));
        assert!(!allows(Role::Admin, Action::ManagePrivilegedMembers));
        assert!(allows(Role::Owner, Action::ManageOrg));
        assert_eq!(Action::ManageOrg.min_role(), Role::Owner);
        assert_eq!(Action::Read.min_role(), Role::Viewer);
        assert_eq!(Action::ReadUsage.min_role(), Role::Viewer);
        assert_eq!(Action::ManageLimits.min_role(), Role::Admin);
        assert!(Action::ManageLimits.org_wide());
        assert!(!Action::ReadUsage.org_wide());
    }
}
