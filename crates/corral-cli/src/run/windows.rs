//! The flags of `corral run` that only Windows can honour: the leader's
//! access token and the working-set limit. Parsing checks their form;
//! elsewhere the library refuses them in one line before anything starts.

use corral::{Isolation, Limits, Token, WorkingSet};

#[derive(Debug, Default, clap::Args)]
pub struct WindowsArgs {
    /// Windows: run the leader (and so the whole group) with a restricted
    /// token (no privileges, Administrators deny-only, restricting SIDs) or
    /// a low-integrity one.
    #[arg(long, value_name = "restricted|low-integrity", value_parser = parse_token)]
    token: Option<Token>,
    /// Windows: the resident memory each process keeps, MIN:MAX (like
    /// 16MiB:256MiB); pages past MAX are trimmed, nothing is killed.
    #[arg(long = "working-set", value_name = "MIN:MAX", value_parser = parse_working_set)]
    working_set: Option<WorkingSet>,
}

fn parse_token(s: &str) -> Result<Token, String> {
    s.parse()
}

fn parse_working_set(s: &str) -> Result<WorkingSet, String> {
    let bad = || format!("invalid working set '{s}': expected MIN:MAX, like 16MiB:256MiB");
    let (min, max) = s.split_once(':').ok_or_else(bad)?;
    let size = |v: &str| corral::units::parse_size(v.trim()).map_err(|e| format!("invalid working set '{s}': {e}"));
    Ok(WorkingSet::new(size(min)?, size(max)?))
}

impl WindowsArgs {
    /// `iso` with the token asked for.
    pub fn isolation(&self, iso: Isolation) -> Isolation {
        match self.token {
            Some(t) => iso.token(t),
            None => iso,
        }
    }

    /// `limits` with the working set asked for.
    pub fn limits(&self, mut limits: Limits) -> Limits {
        limits.working_set = self.working_set;
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_working_set_is_min_colon_max_in_sizes() {
        assert_eq!(parse_working_set("16MiB:256MiB").unwrap(), WorkingSet::new(16 << 20, 256 << 20));
        for bad in ["16MiB", "x:1M", "1M:"] {
            assert!(parse_working_set(bad).unwrap_err().starts_with("invalid working set"), "{bad}");
        }
    }

    #[test]
    fn a_token_is_named() {
        assert_eq!(parse_token("low-integrity").unwrap(), Token::LowIntegrity);
        assert!(parse_token("admin").unwrap_err().contains("\"restricted\" or \"low-integrity\""));
    }
}
