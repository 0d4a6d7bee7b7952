//! Windows: the access token the leader runs with, and so every process
//! it starts (a child inherits its creator's primary token).
//!
//! Both kinds are made from corral's own token with `CreateRestrictedToken`
//! and `DISABLE_MAX_PRIVILEGE` (every privilege but
//! `SeChangeNotifyPrivilege` is deleted, not only disabled), and given to
//! the leader by `CreateProcessAsUserW`, which needs no privilege for a
//! token cut from the caller's own. Linux and macOS have no such token:
//! there `no_new_privileges` and capabilities do the job.

use crate::{Error, ErrorKind, Result};

/// Which access token the leader gets (Windows; refused elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Token {
    /// A restricted token, as `runas /trustlevel` and Chrome's sandbox
    /// make them: no privileges, Administrators deny-only, and the
    /// restricting SIDs Everyone, Users, RESTRICTED, the user and the logon
    /// session, so an object is open to the group only if it is open to
    /// one of those as well as to the user.
    Restricted,
    /// No privileges and the Low mandatory integrity level: the group
    /// cannot write to anything labelled Medium or above (most of the
    /// user's files, registry keys and other processes).
    LowIntegrity,
}

impl Token {
    /// The names the CLI and the config use: `restricted`, `low-integrity`.
    pub fn as_str(self) -> &'static str {
        match self {
            Token::Restricted => "restricted",
            Token::LowIntegrity => "low-integrity",
        }
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Token {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Token, String> {
        match s {
            "restricted" => Ok(Token::Restricted),
            "low-integrity" => Ok(Token::LowIntegrity),
            other => Err(format!("token is {other:?}: expected \"restricted\" or \"low-integrity\"")),
        }
    }
}

/// Refuses a token where the OS has none to give.
pub(crate) fn refuse_off_windows(token: Option<Token>) -> Result<()> {
    match token {
        Some(t) if !cfg!(windows) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("a {t} token is a Windows access token; {} has none", std::env::consts::OS),
        )
        .hint("drop token on this host; no_new_privileges and capabilities restrict a Linux group")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_bad_one_names_the_forms() {
        for t in [Token::Restricted, Token::LowIntegrity] {
            assert_eq!(t.as_str().parse::<Token>(), Ok(t));
        }
        let e = "low".parse::<Token>().unwrap_err();
        assert!(e.contains("expected \"restricted\" or \"low-integrity\""), "{e}");
    }

    #[test]
    #[cfg(not(windows))]
    fn a_token_is_refused_off_windows_in_one_line() {
        let e = refuse_off_windows(Some(Token::LowIntegrity)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("a low-integrity token is a Windows access token"), "{e}");
        refuse_off_windows(None).unwrap();
    }
}
