//! `--account`: which account the service runs as.
//!
//! The default is `NT AUTHORITY\LocalService`: no password, no network
//! identity of its own, and the rights of an ordinary user on the machine.
//! corral needs no more: it creates job objects, starts processes, writes
//! its state folder and serves a pipe, none of which takes a privilege.
//! `NetworkService` is the same with the machine's network identity;
//! `LocalSystem` holds every privilege and is only for services that need
//! them. A user account takes its password from `CORRAL_SERVICE_PASSWORD`,
//! never from the command line, where other users could read it.

/// The environment variable that carries a user account's password.
pub const PASSWORD_VAR: &str = "CORRAL_SERVICE_PASSWORD";

/// A service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// `NT AUTHORITY\LocalService`, the default.
    LocalService,
    /// `NT AUTHORITY\NetworkService`.
    NetworkService,
    /// `LocalSystem`: every privilege.
    LocalSystem,
    /// A user, `.\NAME` or `DOMAIN\NAME` (or `NAME@DOMAIN`).
    User(String),
}

impl Account {
    /// Reads `--account`. Case does not matter, and the `NT AUTHORITY\`
    /// forms are accepted too.
    pub fn parse(s: &str) -> Result<Account, String> {
        let lower = s.trim().to_ascii_lowercase();
        let short = lower.strip_prefix(r"nt authority\").or_else(|| lower.strip_prefix(r".\")).unwrap_or(&lower);
        match short {
            "localservice" | "local service" => Ok(Account::LocalService),
            "networkservice" | "network service" => Ok(Account::NetworkService),
            "localsystem" | "system" => Ok(Account::LocalSystem),
            _ if s.contains('\\') || s.contains('@') => Ok(Account::User(s.trim().to_string())),
            _ => Err(format!(
                "unknown account `{s}`: use LocalService (the default), NetworkService, LocalSystem, or a user as .\\NAME or DOMAIN\\NAME"
            )),
        }
    }

    /// The name CreateServiceW takes (`lpServiceStartName`), which is also
    /// what QueryServiceConfigW reports.
    pub fn start_name(&self) -> &str {
        match self {
            Account::LocalService => r"NT AUTHORITY\LocalService",
            Account::NetworkService => r"NT AUTHORITY\NetworkService",
            Account::LocalSystem => "LocalSystem",
            Account::User(u) => u,
        }
    }

    /// Only a user account has a password.
    pub fn needs_password(&self) -> bool {
        matches!(self, Account::User(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_accounts_in_every_spelling() {
        for s in ["LocalService", "localservice", r"NT AUTHORITY\LocalService", r"nt authority\local service"] {
            assert_eq!(Account::parse(s), Ok(Account::LocalService), "{s}");
        }
        assert_eq!(Account::parse("NetworkService"), Ok(Account::NetworkService));
        assert_eq!(Account::parse(r".\LocalSystem"), Ok(Account::LocalSystem));
        assert_eq!(Account::parse(r"NT AUTHORITY\SYSTEM"), Ok(Account::LocalSystem));
        assert_eq!(Account::LocalService.start_name(), r"NT AUTHORITY\LocalService");
        assert!(!Account::LocalSystem.needs_password());
    }

    #[test]
    fn users_need_a_domain_part_and_a_password() {
        assert_eq!(Account::parse(r".\svc-corral"), Ok(Account::User(r".\svc-corral".into())));
        assert_eq!(Account::parse("svc@corp.example"), Ok(Account::User("svc@corp.example".into())));
        assert!(Account::User(r".\x".into()).needs_password());
        let e = Account::parse("bob").unwrap_err();
        assert!(e.contains("unknown account `bob`") && e.contains(r".\NAME"), "{e}");
    }
}
